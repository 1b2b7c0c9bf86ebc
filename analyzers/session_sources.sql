-- How many of the window's sessions a report reads from stored rows and how many it recomputes from the raw
-- rows. Needs the CTEs of a stored-rows composition (analyzers/runner.py STORED). Parameters: those of report.
SELECT (SELECT count() FROM session_rows_stored) AS stored, (SELECT count() FROM session_rows_computed) AS recomputed
