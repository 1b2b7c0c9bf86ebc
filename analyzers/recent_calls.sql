-- The most recent LLM calls, named as in llm_calls, with the tool calls each one emitted (ordered by their
-- index) and each tool call's outcome: ok or error once a later request carried its result back, pending
-- while none has (for up to 10 minutes, the sessions' default --abandon), missing after. Parameters: last (UInt32).
SELECT
    c.call_id AS call_id,
    c.ts AS ts,
    c.upstream AS upstream,
    c.api AS api,
    c.endpoint AS endpoint,
    c.model AS model,
    c.model_requested AS model_requested,
    c.model_returned AS model_returned,
    c.deployment AS deployment,
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
    c.request_bytes AS request_bytes,
    c.response_bytes AS response_bytes,
    c.session_id AS session_id,
    c.agent AS agent,
    c.user_id AS user_id,
    c.properties AS properties,
    c.tool_call_count AS tool_call_count,
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
        tc.call_id AS call_id,
        arraySort(x -> x.1, groupArray((
            tc.call_index, tc.tool_call_id, tc.name, tc.raw_arguments, tc.arguments, tc.malformed_kind,
            multiIf(
                r.tool_call_id != '' AND r.error_rule != '', 'error',
                r.tool_call_id != '', 'ok',
                tc.ts > now64(3) - toIntervalMinute(10), 'pending',
                'missing'
            ),
            r.error_rule
        ))) AS calls
    FROM
    (
        SELECT * FROM tool_calls
        WHERE call_id IN (
            SELECT call_id FROM llm_calls ORDER BY ts DESC, call_id LIMIT 1 BY call_id LIMIT {last:UInt32}
        )
        LIMIT 1 BY tool_call_uid
    ) AS tc
    LEFT JOIN
    (
        SELECT upstream, tool_call_id, argMax(error_rule, classified_at) AS error_rule
        FROM tool_results
        WHERE tool_call_id IN (
            SELECT tool_call_id FROM tool_calls
            WHERE call_id IN (
                SELECT call_id FROM llm_calls ORDER BY ts DESC, call_id LIMIT 1 BY call_id LIMIT {last:UInt32}
            )
        )
        GROUP BY upstream, tool_call_id
    ) AS r ON tc.upstream = r.upstream AND tc.tool_call_id = r.tool_call_id
    GROUP BY tc.call_id
) AS t ON c.call_id = t.call_id
ORDER BY c.ts DESC, c.call_id
