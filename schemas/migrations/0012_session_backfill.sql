-- Session rows for what was stored before sessions were kept at ingest (migration 0011): the rows the
-- recorder's fold writes (store/sessions.py), computed from the stored calls and results, for every session
-- the recorder placed its calls in (the placed_key rule). A result joins the session of the call that
-- produced it, else of the call that carried it; one whose producer is not a step of that session counts in
-- `unplaced`. Run once, by `migrate` (with the vocabularies bound); a session that gets a row again later
-- keeps the higher version.
INSERT INTO sessions (skey, version, is_deleted, agent, agent_key, user_id, properties, first_ts, last_ts,
    step_call, step_ts, step_model, step_requested, step_upstream_failed, step_ok, step_final, step_tools,
    step_malformed, step_hash, step_results, step_errors, sigs, result_ids, result_producer, result_error,
    unplaced)
SELECT
    c.skey,
    length(c.st) + length(r.ids),
    0,
    c.s_agent,
    c.s_agent_key,
    c.s_user_id,
    c.s_properties,
    c.st[1].1,
    greatest(c.st[-1].1, r.last_result),
    arrayMap(x -> x.2, c.st),
    arrayMap(x -> x.1, c.st),
    arrayMap(x -> x.3, c.st),
    arrayMap(x -> x.4, c.st),
    arrayMap(x -> x.5, c.st),
    arrayMap(x -> x.6, c.st),
    arrayMap(x -> x.7, c.st),
    arrayMap(x -> x.8, c.st),
    arrayMap(x -> x.9, c.st),
    arrayMap(x -> x.10, c.st),
    arrayMap(x -> toUInt32(arrayCount(p -> p = x.2, r.producers)), c.st),
    arrayMap(x -> toUInt32(arrayCount((p, e) -> p = x.2 AND e = 1, r.producers, r.errors)), c.st),
    c.s_sigs,
    r.ids,
    r.producers,
    r.errors,
    toUInt32(arrayCount(p -> NOT has(arrayMap(x -> x.2, c.st), p), r.producers))
FROM
(
    SELECT
        placed AS skey,
        arraySort(x -> (x.1, x.2), groupArray((ts, call_id, model, ifNull(model_requested, ''),
            toUInt8(upstream_failed), toUInt8(ok), toUInt8(final), toUInt32(tool_call_count),
            toUInt32(malformed_count), request_hash))) AS st,
        anyIf(agent, agent != '') AS s_agent,
        argMin(if(agent != '', agent, concat(upstream, ':', key_fingerprint)), ts) AS s_agent_key,
        anyIf(user_id, user_id != '') AS s_user_id,
        argMax(properties, ts) AS s_properties,
        groupArrayArray(tool_sigs) AS s_sigs
    FROM
    (
        SELECT
            *,
            multiIf(
                session_id != '', concat('h:', session_id),
                link_key != '', concat('k:', link_key),
                previous_response_id != '' OR first_prior_tool_call_id != '' OR conv_key = '', '',
                concat('k:', conv_key)
            ) AS placed,
            status >= 500 OR has({upstream_failures:Array(String)}, outcome)
                OR (status = 0 AND outcome != 'client_aborted') AS upstream_failed,
            status BETWEEN 200 AND 399 AND outcome = 'ok' AS ok,
            ok AND tool_call_count = 0 AND NOT has({token_limit_reasons:Array(String)}, ifNull(finish_reason, ''))
                AS final
        FROM llm_calls FINAL
        WHERE endpoint != 'other'
    )
    WHERE placed != ''
    GROUP BY skey
) AS c
LEFT JOIN
(
    SELECT
        key AS skey,
        groupArray(tool_call_id) AS ids,
        groupArray(producer) AS producers,
        groupArray(err) AS errors,
        max(result_ts) AS last_result
    FROM
    (
        SELECT
            t.tool_call_id AS tool_call_id,
            any(t.producer_call_id) AS producer,
            toUInt8(argMax(t.error_rule, t.classified_at) != '') AS err,
            min(t.ts) AS result_ts,
            any(if(p.placed != '', p.placed, q.placed)) AS key
        FROM tool_results AS t
        LEFT JOIN
        (
            SELECT call_id, multiIf(
                session_id != '', concat('h:', session_id),
                link_key != '', concat('k:', link_key),
                previous_response_id != '' OR first_prior_tool_call_id != '' OR conv_key = '', '',
                concat('k:', conv_key)
            ) AS placed
            FROM llm_calls
            WHERE endpoint != 'other'
        ) AS p ON t.producer_call_id = p.call_id
        LEFT JOIN
        (
            SELECT call_id, multiIf(
                session_id != '', concat('h:', session_id),
                link_key != '', concat('k:', link_key),
                previous_response_id != '' OR first_prior_tool_call_id != '' OR conv_key = '', '',
                concat('k:', conv_key)
            ) AS placed
            FROM llm_calls
            WHERE endpoint != 'other'
        ) AS q ON t.call_id = q.call_id
        GROUP BY t.tool_call_id
    )
    WHERE key != ''
    GROUP BY key
) AS r ON c.skey = r.skey
SETTINGS join_use_nulls = 0
