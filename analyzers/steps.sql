-- One row per LLM call in the window, with its session, its failure flags and the session facts a report or a
-- timeline needs. A call is a step unless it is an attempt that a retry replaced (is_step = 0): a request that
-- failed upstream (5xx, timeout, connection failure) and was sent again, byte for byte, as the next call of
-- its session; the step then takes the last attempt's outcome. Needs the CTEs call_keys (the calls, with
-- their session keys) and result_counts. Parameters: the vocabularies upstream_failures and
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
        k.skey AS skey,
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
    FROM call_keys AS k
    LEFT JOIN result_counts AS r ON k.call_id = r.call_id
) AS s
WINDOW attempts AS (PARTITION BY s.skey ORDER BY s.ts, s.call_id ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
) AS a
WINDOW w AS (PARTITION BY a.skey)
