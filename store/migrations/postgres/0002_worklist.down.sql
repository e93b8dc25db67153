DROP TABLE IF EXISTS findings;
DROP TABLE IF EXISTS worklist_state;
