-- The mask files the rows named stay in masks/ as orphans
-- (DB.PruneTriageMasks removes them).
DROP TABLE IF EXISTS triage_results;
