-- The columns of session_rows_computed.sql for the sessions a report reads from the rows kept at ingest: those
-- wholly inside the window (first step at or after `since`, last call or result before `until`), every result
-- placed, and no call the recorder could not place (the CTE unplaced_keys). The figures that do not depend on
-- the window's end were computed when the row was written (the fig_* columns, migration 0013); open or
-- abandoned, success, cascade and loop are decided here. last_ts only grows from version to version, so
-- filtering on it before the versions are merged keeps the latest. Every other session with a step in the
-- window is recomputed from the raw rows (the composition's call_keys scope). Needs the CTE unplaced_keys.
-- Parameters: since, until (DateTime64(3)), agent ('' = all), abandon_s, cascade_run.
SELECT
    skey,
    fig_model AS model,
    agent,
    agent_key,
    fig_requested AS requested,
    fig_malformed_steps AS malformed_steps,
    fig_tool_errors AS tool_errors,
    user_id,
    properties,
    fig_steps AS steps,
    fig_first_step AS first_ts,
    fig_last_step AS last_ts,
    fig_failed_steps AS failed_steps,
    fig_unrecovered AS unrecovered,
    fig_max_run AS max_run,
    s_outcome AS outcome,
    s_outcome != 'open' AND (fig_max_run >= {cascade_run:UInt32} OR fig_unrecovered > 0) AS cascade,
    fig_max_repeat >= 3 AS loop,
    fig_m_failed AS m_failed,
    fig_m_retries AS m_retries,
    fig_m_recovered AS m_recovered,
    fig_m_errors AS m_errors,
    fig_m_results AS m_results
FROM
(
    SELECT
        skey, agent, agent_key, user_id, properties, fig_model, fig_requested, fig_malformed_steps, fig_tool_errors,
        fig_steps, fig_first_step, fig_last_step, fig_failed_steps, fig_unrecovered, fig_max_run, fig_max_repeat,
        fig_m_failed, fig_m_retries, fig_m_recovered, fig_m_errors, fig_m_results,
        dateDiff('millisecond', fig_last_step, {until:DateTime64(3)}) / 1000.0 AS s_idle,
        multiIf(
            fig_last_pending AND s_idle < {abandon_s:UInt32}, 'open',
            fig_last_pending, 'abandoned',
            fig_last_final AND fig_unrecovered = 0, 'success',
            'failed'
        ) AS s_outcome
    FROM sessions FINAL
    PREWHERE last_ts >= {since:DateTime64(3)}
    WHERE first_ts >= {since:DateTime64(3)} AND last_ts < {until:DateTime64(3)} AND unplaced = 0 AND is_deleted = 0
      AND sess_n > 0 AND ({agent:String} = '' OR agent = {agent:String})
      AND skey NOT IN (SELECT skey FROM unplaced_keys)
)
