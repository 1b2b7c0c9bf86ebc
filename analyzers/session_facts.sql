-- The per-session indicators regression alerts compare, for the sessions with a step in the window
-- (alerts/evaluate.py stores them in session_facts). A session counts as malformed or as having a tool error
-- from its first such step; cascade and failed (closed and not a success) only once it is not open.
-- Needs the CTEs result_counts, steps and session_rows. Parameters: since, until, agent (''), abandon_s,
-- cascade_run.
SELECT
    agent_key AS agent,
    skey,
    model,
    requested,
    first_ts AS ts,
    last_ts,
    steps,
    outcome,
    malformed_steps > 0 AS malformed,
    tool_errors > 0 AS tool_error,
    toBool(cascade) AS cascade
FROM session_rows
WHERE steps > 0
