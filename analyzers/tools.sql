-- Per tool and model: calls, malformed calls by kind, results and errors, and the most frequent error
-- messages (the first line of each error result, up to 160 characters). Needs the CTE tool_outcomes.
-- Parameters: model ('' = all).
SELECT
    name AS tool,
    model,
    count() AS calls,
    countIf(malformed_kind != '') AS malformed,
    malformed / calls AS malformed_rate,
    mapFromArrays(tupleElement(sumMap(kind_keys, kind_ones), 1), tupleElement(sumMap(kind_keys, kind_ones), 2))
        AS malformed_by_kind,
    countIf(has_result) AS results,
    countIf(has_result AND error_rule != '') AS errors,
    if(results = 0, NULL, errors / results) AS error_rate,
    topKIf(5)(substring(splitByChar('\n', trimLeft(result_head))[1], 1, 160), has_result AND error_rule != '')
        AS top_errors
FROM
(
    SELECT
        *,
        if(malformed_kind = '', CAST([], 'Array(String)'), [toString(malformed_kind)]) AS kind_keys,
        if(malformed_kind = '', CAST([], 'Array(UInt64)'), [toUInt64(1)]) AS kind_ones
    FROM tool_outcomes
    WHERE {model:String} = '' OR model = {model:String}
)
GROUP BY tool, model
ORDER BY calls DESC, tool, model
