DROP TABLE IF EXISTS triage_jobs;
