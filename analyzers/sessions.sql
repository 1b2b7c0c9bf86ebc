-- Sessions in the window, newest first. Needs the CTEs tool_outcomes, steps and session_rows.
-- Parameters: model ('' = all), failed_only (UInt8: failed, abandoned or cascade sessions only), last (UInt32).
SELECT
    skey AS session,
    model,
    agent,
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
ORDER BY last_ts DESC, skey
LIMIT {last:UInt32}
