-- The columns of session_rows_computed.sql, computed from the session rows kept at ingest for the sessions a
-- report reads that way (the CTE usable_keys). The same definitions over the row's step arrays, which are in
-- (ts, call_id) order: a retry replaces an upstream failure followed by the same request; a failed step is
-- recovered by a later step with a tool result that was not an error (tool failures) or any later successful
-- response (upstream failures); the session's model has the most steps (ties: the later last step).
-- Parameters: until, abandon_s, cascade_run.
SELECT
    skey,
    s_model AS model,
    agent,
    agent_key,
    s_requested AS requested,
    s_malformed_steps AS malformed_steps,
    s_tool_errors AS tool_errors,
    user_id,
    properties,
    s_steps AS steps,
    s_first_ts AS first_ts,
    s_last_ts AS last_ts,
    s_failed_steps AS failed_steps,
    s_unrecovered AS unrecovered,
    s_max_run AS max_run,
    s_outcome AS outcome,
    s_outcome != 'open' AND (s_max_run >= {cascade_run:UInt32} OR s_unrecovered > 0) AS cascade,
    s_max_repeat >= 3 AS loop,
    mapFromArrays(s_models, arrayMap(m -> toUInt64(arrayCount((x, f) -> x = m AND f, step_model, s_failed)), s_models))
        AS m_failed,
    mapFromArrays(s_models, arrayMap(m -> toUInt64(arrayCount((x, f) -> x = m AND f, step_model, s_superseded)),
        s_models)) AS m_retries,
    mapFromArrays(s_models, arrayMap(m -> toUInt64(arrayCount((x, f) -> x = m AND f, step_model, s_recovered)),
        s_models)) AS m_recovered,
    mapFromArrays(s_models, arrayMap(m -> toUInt64(arraySum((x, e) -> if(x = m, e, 0), step_model, step_errors)),
        s_models)) AS m_errors,
    mapFromArrays(s_models, arrayMap(m -> toUInt64(arraySum((x, e) -> if(x = m, e, 0), step_model, step_results)),
        s_models)) AS m_results
FROM
(
    SELECT
        skey,
        agent,
        agent_key,
        user_id,
        properties,
        step_model,
        step_errors,
        step_results,
        length(step_call) AS s_n,
        arrayEnumerate(step_call) AS s_ix,
        arrayMap(i -> step_upstream_failed[i] = 1 AND step_hash[i] != 0 AND i < s_n AND step_hash[i + 1] = step_hash[i],
            s_ix) AS s_superseded,
        arrayMap(i -> step_malformed[i] > 0 OR step_errors[i] > 0, s_ix) AS s_tool_failed,
        arrayMap(i -> (step_upstream_failed[i] = 1 OR s_tool_failed[i]) AND NOT s_superseded[i], s_ix) AS s_failed,
        arrayMax(arrayMap(i -> if(step_results[i] > step_errors[i], step_ts[i], toDateTime64(0, 3, 'UTC')), s_ix))
            AS s_last_tool_ok,
        arrayMax(arrayMap(i -> if(step_ok[i] = 1, step_ts[i], toDateTime64(0, 3, 'UTC')), s_ix)) AS s_last_ok,
        arrayMap(i -> s_failed[i] AND (
            (s_tool_failed[i] AND s_last_tool_ok > step_ts[i])
            OR (NOT s_tool_failed[i] AND step_upstream_failed[i] = 1 AND s_last_ok > step_ts[i])
        ), s_ix) AS s_recovered,
        step_requested[s_n] AS s_requested,
        arrayCount(x -> x > 0, step_malformed) AS s_malformed_steps,
        arraySum(step_errors) AS s_tool_errors,
        arrayCount(x -> NOT x, s_superseded) AS s_steps,
        step_ts[1] AS s_first_ts,
        step_ts[s_n] AS s_last_ts,
        arrayCount(x -> x, s_failed) AS s_failed_steps,
        step_tools[s_n] > 0 AND step_tools[s_n] > step_results[s_n] AS s_last_pending,
        step_final[s_n] = 1 AS s_last_final,
        arrayCount((f, r) -> f AND NOT r, s_failed, s_recovered) AS s_unrecovered,
        arrayFilter((f, s) -> NOT s, arrayMap(x -> toUInt8(x), s_failed), s_superseded) AS s_flags,
        arrayMax(arrayMap(x -> arraySum(x), arraySplit((f, z) -> z, s_flags, arrayMap(f -> f = 0, s_flags)))) AS s_max_run,
        arraySort(sigs) AS s_sigs,
        if(empty(s_sigs), 0, arrayMax(arrayMap(x -> length(x), arraySplit((v, i) -> i = 1 OR v != s_sigs[i - 1], s_sigs,
            arrayEnumerate(s_sigs))))) AS s_max_repeat,
        dateDiff('millisecond', s_last_ts, {until:DateTime64(3)}) / 1000.0 AS s_idle,
        multiIf(
            s_last_pending AND s_idle < {abandon_s:UInt32}, 'open',
            s_last_pending, 'abandoned',
            s_last_final AND s_unrecovered = 0, 'success',
            'failed'
        ) AS s_outcome,
        arrayDistinct(step_model) AS s_models,
        arrayMap(m -> arrayCount((x, s) -> x = m AND NOT s, step_model, s_superseded), s_models) AS s_model_steps,
        arrayMap(m -> arrayMax(arrayFilter((t, x) -> x = m, step_ts, step_model)), s_models) AS s_model_last,
        arraySort((m, c, l) -> (c, l), s_models, s_model_steps, s_model_last)[-1] AS s_model
    FROM sessions FINAL
    PREWHERE last_ts >= {since:DateTime64(3)}
    WHERE skey IN (SELECT skey FROM usable_keys)
)
