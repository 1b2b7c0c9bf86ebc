-- One row per LLM call in the window, with its session, its failure flags and the session facts a report or a
-- timeline needs. A call is a step unless it is an attempt that a retry replaced (is_step = 0): a request that
-- failed upstream (5xx, timeout, connection failure) and was sent again, byte for byte, as the next call of
-- its session; the step then takes the last attempt's outcome. Needs the CTE result_counts. Parameters:
-- since, until (DateTime64(3)), agent (String, empty = all); the vocabularies upstream_failures and
-- token_limit_reasons (bound by the runner).
SELECT
    a.*,
    max(if(a.n_ok > 0, a.ts, toDateTime64(0, 3, 'UTC'))) OVER w AS session_last_tool_ok_ts,
    max(if(a.ok_response, a.ts, toDateTime64(0, 3, 'UTC'))) OVER w AS session_last_ok_ts,
    a.failed AND (
        (a.tool_failed AND session_last_tool_ok_ts > a.ts)
        OR (NOT a.tool_failed AND a.upstream_failed AND session_last_ok_ts > a.ts)
    ) AS recovered
FROM
(
SELECT
    s.*,
    s.upstream_failed AND s.request_hash != 0
        AND leadInFrame(s.request_hash) OVER attempts = s.request_hash AS superseded,
    NOT superseded AS is_step,
    s.attempt_failed AND NOT superseded AS failed
FROM
(
    SELECT
        k.call_id AS call_id,
        k.ts AS ts,
        k.model AS model,
        ifNull(k.model_requested, '') AS requested,
        k.upstream AS upstream,
        k.agent AS agent,
        k.request_hash AS request_hash,
        k.status AS status,
        k.outcome AS outcome,
        k.finish_reason AS finish_reason,
        k.tool_call_count AS tool_call_count,
        k.malformed_count AS n_malformed,
        k.malformed_kinds AS malformed_kinds,
        k.tool_sigs AS tool_sigs,
        k.latency_ms AS latency_ms,
        k.ttfb_ms AS ttfb_ms,
        k.input_tokens AS input_tokens,
        k.output_tokens AS output_tokens,
        k.cache_read_tokens AS cache_read_tokens,
        k.cache_write_tokens AS cache_write_tokens,
        k.user_id AS user_id,
        k.properties AS properties,
        if(k.agent != '', k.agent, concat(k.upstream, ':', k.key_fingerprint)) AS agent_key,
        multiIf(
            k.session_id != '', concat('h:', k.session_id),
            k.link_key != '', concat('k:', k.link_key),
            pr.rkey != '', concat('k:', pr.rkey),
            p.pkey != '', concat('k:', p.pkey),
            k.conv_key != '', concat('k:', k.conv_key),
            o.skey0 != '', o.skey0,
            concat('c:', toString(k.call_id))
        ) AS skey,
        r.n_err AS n_err,
        r.n_results AS n_results,
        r.n_results - r.n_err AS n_ok,
        greatest(toInt64(k.tool_call_count) - toInt64(r.n_results), 0) AS n_noresult,
        (k.status >= 500 OR has({upstream_failures:Array(String)}, k.outcome)
            OR (k.status = 0 AND k.outcome != 'client_aborted')) AS upstream_failed,
        (k.malformed_count > 0 OR r.n_err > 0) AS tool_failed,
        (upstream_failed OR tool_failed) AS attempt_failed,
        (k.status BETWEEN 200 AND 399 AND k.outcome = 'ok') AS ok_response,
        (ok_response AND k.tool_call_count = 0
            AND NOT has({token_limit_reasons:Array(String)}, ifNull(k.finish_reason, ''))) AS final_answer
    FROM
    (
        SELECT call_id, ts, model, model_requested, upstream, agent, status, outcome, finish_reason, tool_call_count, malformed_count,
               malformed_kinds, tool_sigs, latency_ms, ttfb_ms, input_tokens, output_tokens, cache_read_tokens,
               cache_write_tokens, user_id, properties, key_fingerprint, session_id, conv_key, opening_key,
               first_prior_tool_call_id, link_key, previous_response_id, request_hash
        FROM llm_calls FINAL
        WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND endpoint != 'other'
          AND ({agent:String} = '' OR agent = {agent:String})
    ) AS k
    LEFT JOIN
    (
        -- calls the recorder could not link: the first tool call of the call their earliest id leads to
        SELECT tool_call_id, any(conv_key) AS pkey
        FROM tool_calls
        WHERE ts >= {since:DateTime64(3)} - INTERVAL 1 DAY AND ts < {until:DateTime64(3)} AND call_index = 0
          AND tool_call_id IN (
              SELECT first_prior_tool_call_id FROM llm_calls
              WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
                AND link_key = '' AND first_prior_tool_call_id != ''
          )
        GROUP BY tool_call_id
    ) AS p ON k.first_prior_tool_call_id = p.tool_call_id
    LEFT JOIN
    (
        -- Responses API calls the recorder could not link (cold memory, out of order): follow
        -- previous_response_id back, response by response, to the first one that has a session key
        SELECT start_id, argMin(key, depth) AS rkey
        FROM
        (
            WITH RECURSIVE chain AS (
                SELECT previous_response_id AS start_id, previous_response_id AS cur, '' AS key, 0 AS depth
                FROM llm_calls
                WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
                  AND link_key = '' AND previous_response_id != ''
                GROUP BY previous_response_id
                UNION ALL
                SELECT c.start_id, l.previous_response_id,
                       if(l.link_key != '', l.link_key, l.conv_key), c.depth + 1
                FROM chain AS c
                INNER JOIN
                (
                    SELECT response_id, previous_response_id, link_key, conv_key
                    FROM llm_calls
                    WHERE ts >= {since:DateTime64(3)} - INTERVAL 1 DAY AND ts < {until:DateTime64(3)}
                      AND response_id != ''
                ) AS l ON l.response_id = c.cur
                WHERE c.key = '' AND c.cur != '' AND c.depth < 200
            )
            SELECT start_id, key, depth FROM chain WHERE key != ''
        )
        GROUP BY start_id
    ) AS pr ON k.previous_response_id = pr.start_id
    ASOF LEFT JOIN
    (
        -- a first turn that got no reply joins the session its retry started
        SELECT opening_key, ts, concat('k:', conv_key) AS skey0
        FROM llm_calls
        WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND conv_key != '' AND session_id = ''
          AND opening_key IN (
              SELECT opening_key FROM llm_calls
              WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
                AND conv_key = '' AND opening_key != '' AND session_id = ''
          )
    ) AS o ON k.opening_key = o.opening_key AND k.ts <= o.ts
    LEFT JOIN result_counts AS r ON k.call_id = r.call_id
) AS s
WINDOW attempts AS (PARTITION BY s.skey ORDER BY s.ts, s.call_id ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
) AS a
WINDOW w AS (PARTITION BY a.skey)
