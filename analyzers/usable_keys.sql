-- The sessions a report reads from their stored row (sessions, kept at ingest): wholly inside the window
-- (first step at or after `since`, last call or result before `until`), every result placed, and no call
-- the recorder could not place. Every other session with a step in the window is recomputed from the raw
-- rows (steps.sql, scoped to the calls no usable row holds). last_ts only grows from version to version, so
-- filtering on it before the versions are merged keeps the latest. Needs the CTE unplaced_keys.
-- Parameters: since, until (DateTime64(3)), agent ('' = all).
SELECT skey
FROM sessions FINAL
PREWHERE last_ts >= {since:DateTime64(3)}
WHERE first_ts >= {since:DateTime64(3)} AND last_ts < {until:DateTime64(3)} AND unplaced = 0 AND is_deleted = 0
  AND length(step_call) > 0 AND ({agent:String} = '' OR agent = {agent:String})
  AND skey NOT IN (SELECT skey FROM unplaced_keys)
