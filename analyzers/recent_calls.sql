-- The most recent LLM calls with the tool calls each one emitted (ordered by their index).
-- Parameters: last (UInt32).
SELECT
    c.call_id AS call_id,
    c.ts AS ts,
    c.upstream AS upstream,
    c.api AS api,
    c.endpoint AS endpoint,
    c.model AS model,
    c.model_requested AS model_requested,
    c.stream AS stream,
    c.status AS status,
    c.outcome AS outcome,
    c.error AS error,
    c.parse_status AS parse_status,
    c.parse_error AS parse_error,
    c.finish_reason AS finish_reason,
    c.input_tokens AS input_tokens,
    c.cache_read_tokens AS cache_read_tokens,
    c.cache_write_tokens AS cache_write_tokens,
    c.output_tokens AS output_tokens,
    c.latency_ms AS latency_ms,
    c.ttfb_ms AS ttfb_ms,
    c.session_id AS session_id,
    c.agent AS agent,
    c.tool_result_count AS tool_result_count,
    t.calls AS tool_calls
FROM
(
    SELECT *
    FROM llm_calls
    ORDER BY ts DESC, call_id
    LIMIT 1 BY call_id
    LIMIT {last:UInt32}
) AS c
LEFT JOIN
(
    SELECT
        call_id,
        arraySort(x -> x.1, groupArray((call_index, tool_call_id, name, raw_arguments, arguments IS NOT NULL))) AS calls
    FROM
    (
        SELECT * FROM tool_calls
        WHERE call_id IN (
            SELECT call_id FROM llm_calls ORDER BY ts DESC, call_id LIMIT 1 BY call_id LIMIT {last:UInt32}
        )
        LIMIT 1 BY tool_call_uid
    )
    GROUP BY call_id
) AS t ON c.call_id = t.call_id
ORDER BY c.ts DESC, c.call_id
