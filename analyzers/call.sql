-- One call, whole: its row, the tool calls it emitted, the tool results its request carried, and its bodies
-- as stored (redacted unless store_bodies = "full"). Parameters: call_id (UUID).
SELECT
    c.*,
    (
        SELECT arraySort(x -> x.1, groupArray((call_index, tool_call_id, name, raw_arguments, arguments,
            malformed_kind, malformed_detail)))
        FROM (SELECT * FROM tool_calls WHERE call_id = {call_id:UUID} LIMIT 1 BY tool_call_uid)
    ) AS tool_calls,
    (
        SELECT groupArray((tool_call_id, content, content_bytes, truncated, is_error, error_rule))
        FROM (
            SELECT tool_call_id, argMax(content, classified_at) AS content, any(content_bytes) AS content_bytes,
                   any(truncated) AS truncated, any(is_error) AS is_error,
                   argMax(error_rule, classified_at) AS error_rule
            FROM tool_results WHERE call_id = {call_id:UUID} GROUP BY tool_call_id
        )
    ) AS tool_results,
    b.request_body AS request_body,
    b.response_body AS response_body,
    b.call_id != toUUID('00000000-0000-0000-0000-000000000000') AS has_body
FROM (SELECT * FROM llm_calls FINAL WHERE call_id = {call_id:UUID}) AS c
LEFT JOIN (SELECT * FROM bodies FINAL WHERE call_id = {call_id:UUID}) AS b ON c.call_id = b.call_id
