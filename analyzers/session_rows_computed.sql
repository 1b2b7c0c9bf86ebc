-- One row per session in the window, computed from its steps: its model (most steps; ties: the later), steps,
-- failures, outcome, cascade and loop flags, the counts behind the per-session indicators alerts compare,
-- and the step figures per model of each call (m_*: failed steps, retries, recovered, tool errors and
-- results). The definitions in SQL; analyzers/session_rows_stored.sql computes the same columns from a
-- session row kept at ingest. Needs the CTE steps. Parameters: until, abandon_s, cascade_run.
SELECT
    r.skey AS skey,
    arrayReverseSort(k -> (r.m_steps[k], r.m_last[k]), mapKeys(r.m_last))[1] AS model,
    r.agent AS agent,
    r.agent_key AS agent_key,
    r.requested AS requested,
    r.malformed_steps AS malformed_steps,
    r.tool_errors AS tool_errors,
    r.user_id AS user_id,
    r.properties AS properties,
    r.steps AS steps,
    r.first_ts AS first_ts,
    r.last_ts AS last_ts,
    r.failed_steps AS failed_steps,
    r.unrecovered AS unrecovered,
    r.max_run AS max_run,
    r.outcome AS outcome,
    r.outcome != 'open' AND (r.max_run >= {cascade_run:UInt32} OR r.unrecovered > 0) AS cascade,
    r.max_repeat >= 3 AS loop,
    r.m_failed AS m_failed,
    r.m_retries AS m_retries,
    r.m_recovered AS m_recovered,
    r.m_errors AS m_errors,
    r.m_results AS m_results
FROM
(
    SELECT
        skey,
        any(agent) AS agent,
        any(agent_key) AS agent_key,
        argMax(requested, ts) AS requested,
        countIf(n_malformed > 0) AS malformed_steps,
        sum(n_err) AS tool_errors,
        anyIf(user_id, user_id != '') AS user_id,
        argMax(properties, ts) AS properties,
        countIf(is_step) AS steps,
        min(ts) AS first_ts,
        max(ts) AS last_ts,
        countIf(failed) AS failed_steps,
        argMax(tool_call_count > 0 AND n_noresult > 0, ts) AS last_pending,
        argMax(final_answer, ts) AS last_final,
        countIf(failed AND NOT recovered) AS unrecovered,
        arraySort((f, t) -> t, groupArrayIf(toUInt8(failed), is_step), groupArrayIf(ts, is_step)) AS flags,
        arrayMax(arrayMap(x -> arraySum(x), arraySplit((f, z) -> z, flags, arrayMap(f -> f = 0, flags)))) AS max_run,
        -- the most times one tool was called with identical arguments (signatures sorted, equal runs)
        arraySort(groupArrayArray(tool_sigs)) AS sigs,
        if(empty(sigs), 0, arrayMax(arrayMap(x -> length(x), arraySplit((v, i) -> i = 1 OR v != sigs[i - 1], sigs,
            arrayEnumerate(sigs))))) AS max_repeat,
        dateDiff('millisecond', last_ts, {until:DateTime64(3)}) / 1000.0 AS idle_s,
        multiIf(
            last_pending AND idle_s < {abandon_s:UInt32}, 'open',
            last_pending, 'abandoned',
            last_final AND unrecovered = 0, 'success',
            'failed'
        ) AS outcome,
        sumMap(map(model, toUInt64(failed))) AS m_failed,
        sumMap(map(model, toUInt64(superseded))) AS m_retries,
        sumMap(map(model, toUInt64(recovered))) AS m_recovered,
        sumMap(map(model, toUInt64(n_err))) AS m_errors,
        sumMap(map(model, toUInt64(n_results))) AS m_results,
        -- the session's model: most steps, ties to the model of the latest call
        sumMap(map(model, toUInt64(is_step))) AS m_steps,
        maxMap(map(model, ts)) AS m_last
    FROM steps
    GROUP BY skey
) AS r
