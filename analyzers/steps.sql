-- One row per step (LLM call) in the window, with its session, its failure flags and the session facts
-- a report or a timeline needs. Parameters: since, until (DateTime64(3)), agent (String, empty = all).
-- Used as the CTE `steps` by report.sql and sessions.sql; needs the CTE `tool_outcomes`.
SELECT
    s.*,
    max(if(s.n_ok > 0, s.ts, toDateTime64(0, 3, 'UTC'))) OVER w AS session_last_tool_ok_ts,
    max(if(s.ok_response, s.ts, toDateTime64(0, 3, 'UTC'))) OVER w AS session_last_ok_ts,
    max(s.ts) OVER w AS session_last_ts,
    s.failed AND (
        (s.tool_failed AND session_last_tool_ok_ts > s.ts)
        OR (NOT s.tool_failed AND s.upstream_failed AND session_last_ok_ts > s.ts)
    ) AS recovered
FROM
(
    SELECT
        k.call_id AS call_id,
        k.ts AS ts,
        k.model AS model,
        k.upstream AS upstream,
        k.agent AS agent,
        k.status AS status,
        k.outcome AS outcome,
        k.finish_reason AS finish_reason,
        k.tool_call_count AS tool_call_count,
        k.latency_ms AS latency_ms,
        k.ttfb_ms AS ttfb_ms,
        k.input_tokens AS input_tokens,
        k.output_tokens AS output_tokens,
        if(k.skey0 != '', k.skey0, if(o.skey0 != '', o.skey0, concat('c:', toString(k.call_id)))) AS skey,
        t.n_malformed AS n_malformed,
        t.n_err AS n_err,
        t.n_ok AS n_ok,
        t.n_noresult AS n_noresult,
        (k.status >= 500 OR k.outcome IN ('connect_error', 'upstream_timeout', 'upstream_error')
            OR (k.status = 0 AND k.outcome != 'client_aborted')) AS upstream_failed,
        (t.n_malformed > 0 OR t.n_err > 0) AS tool_failed,
        (upstream_failed OR tool_failed) AS failed,
        (k.status BETWEEN 200 AND 399 AND k.outcome = 'ok') AS ok_response,
        (ok_response AND k.tool_call_count = 0
            AND ifNull(k.finish_reason, '') NOT IN ('length', 'max_tokens', 'MAX_TOKENS', 'max_output_tokens')) AS final_answer
    FROM
    (
        SELECT
            c.*,
            multiIf(
                c.session_id != '', concat('h:', c.session_id),
                p.pkey != '', concat('k:', p.pkey),
                c.conv_key != '', concat('k:', c.conv_key),
                ''
            ) AS skey0
        FROM
        (
            SELECT call_id, ts, model, upstream, agent, status, outcome, finish_reason, tool_call_count, latency_ms,
                   ttfb_ms, input_tokens, output_tokens, session_id, conv_key, opening_key, first_prior_tool_call_id
            FROM llm_calls FINAL
            WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND endpoint != 'other'
              AND ({agent:String} = '' OR agent = {agent:String})
        ) AS c
        LEFT JOIN
        (
            -- the first tool call of each call: the earliest tool-call id a later request carries leads here
            SELECT tool_call_id, any(conv_key) AS pkey
            FROM tool_calls
            WHERE ts >= {since:DateTime64(3)} - INTERVAL 1 DAY AND ts < {until:DateTime64(3)} AND call_index = 0
            GROUP BY tool_call_id
        ) AS p ON c.first_prior_tool_call_id = p.tool_call_id
    ) AS k
    ASOF LEFT JOIN
    (
        -- a first turn that got no reply joins the session its retry started
        SELECT opening_key, ts, concat('k:', conv_key) AS skey0
        FROM llm_calls
        WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND conv_key != '' AND session_id = ''
    ) AS o ON k.opening_key = o.opening_key AND k.ts <= o.ts
    LEFT JOIN
    (
        SELECT
            call_id,
            countIf(malformed_kind != '') AS n_malformed,
            countIf(has_result AND error_rule != '') AS n_err,
            countIf(has_result AND error_rule = '' AND malformed_kind = '') AS n_ok,
            countIf(NOT has_result) AS n_noresult
        FROM tool_outcomes
        GROUP BY call_id
    ) AS t ON k.call_id = t.call_id
) AS s

WINDOW w AS (PARTITION BY s.skey)
