-- Sessions in the window, newest first. Needs the CTEs result_counts, steps and session_rows.
-- Parameters: model ('' = all), failed_only (UInt8: failed, abandoned or cascade sessions only), user ('' = all),
-- prop_key and prop_value ('' = all: sessions whose properties hold that pair), outcome ('' = all), search
-- ('' = all: a part of the session id), last and offset (UInt32: one page).
SELECT
    skey AS session,
    model,
    agent,
    user_id,
    properties,
    steps,
    first_ts,
    last_ts,
    outcome,
    failed_steps,
    unrecovered AS unrecovered_steps,
    max_run AS longest_failure_run,
    toBool(cascade) AS cascade,
    toBool(loop) AS loop
FROM session_rows
WHERE ({model:String} = '' OR model = {model:String})
  AND (NOT {failed_only:UInt8} OR outcome IN ('failed', 'abandoned') OR cascade)
  AND ({user:String} = '' OR user_id = {user:String})
  AND ({prop_key:String} = '' OR properties[{prop_key:String}] = {prop_value:String})
  AND ({outcome:String} = '' OR outcome = {outcome:String})
  AND ({search:String} = '' OR positionCaseInsensitive(skey, {search:String}) > 0)
ORDER BY last_ts DESC, skey
LIMIT {last:UInt32} OFFSET {offset:UInt32}
