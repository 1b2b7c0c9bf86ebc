-- One row per session with a step in the window: the stored rows the report can use (session_rows_stored)
-- and the sessions recomputed from the raw rows (session_rows_computed over the scoped steps), with the same
-- columns in the same order, and which of the two each row came from (recomputed). Needs the CTEs
-- session_rows_stored and session_rows_computed.
SELECT skey, model, agent, agent_key, requested, malformed_steps, tool_errors, user_id, properties, steps, first_ts, last_ts, failed_steps, unrecovered, max_run, outcome, cascade, loop, m_failed, m_retries, m_recovered, m_errors, m_results, 0 AS recomputed
FROM session_rows_stored
UNION ALL
SELECT skey, model, agent, agent_key, requested, malformed_steps, tool_errors, user_id, properties, steps, first_ts, last_ts, failed_steps, unrecovered, max_run, outcome, cascade, loop, m_failed, m_retries, m_recovered, m_errors, m_results, 1 AS recomputed
FROM session_rows_computed
