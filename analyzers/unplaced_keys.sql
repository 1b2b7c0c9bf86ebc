-- The sessions that calls the recorder could not place belong to, as the SQL linker resolves them (the
-- CTE unplaced_calls: call_keys.sql scoped to those calls). Their stored rows lack those calls, so a report
-- recomputes them.
SELECT DISTINCT skey FROM unplaced_calls
