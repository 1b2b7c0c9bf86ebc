-- Tool calls in the window with the result a later request carried back for their id (if any).
-- has_result and error_rule decide the outcome: ok, error, or (without a result) pending or missing;
-- result_head is the start of the result (its first 500 characters).
SELECT
    t.call_id AS call_id,
    t.ts AS ts,
    t.model AS model,
    t.upstream AS upstream,
    t.tool_call_id AS tool_call_id,
    t.call_index AS call_index,
    t.name AS name,
    t.raw_arguments AS raw_arguments,
    t.arguments AS arguments,
    t.malformed_kind AS malformed_kind,
    t.malformed_detail AS malformed_detail,
    r.tool_call_id != '' AS has_result,
    r.error_rule AS error_rule,
    r.content_head AS result_head
FROM
(
    SELECT call_id, ts, model, upstream, tool_call_id, call_index, name, raw_arguments, arguments, malformed_kind,
           malformed_detail
    FROM tool_calls FINAL
    WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND ({agent:String} = '' OR agent = {agent:String})
) AS t
LEFT JOIN
(
    SELECT upstream, tool_call_id, argMax(error_rule, classified_at) AS error_rule,
           any(substring(content, 1, 500)) AS content_head
    FROM tool_results
    WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
    GROUP BY upstream, tool_call_id
) AS r ON t.upstream = r.upstream AND t.tool_call_id = r.tool_call_id
