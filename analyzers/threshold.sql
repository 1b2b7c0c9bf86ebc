-- Threshold rules over the per-minute rollups: per model, the rate a rule watches over its window and its
-- denominator. Parameters: since, until (DateTime64(3)), model ('' = every model).
SELECT
    c.model AS model,
    c.n_calls AS llm_calls,
    if(c.n_calls = 0, NULL, c.n_http_errors / c.n_calls) AS http_error_rate,
    ifNull(t.n_tool_calls, 0) AS tool_calls,
    if(ifNull(t.n_tool_calls, 0) = 0, NULL, t.n_malformed / t.n_tool_calls) AS malformed_rate
FROM
(
    SELECT model, countMerge(llm_calls) AS n_calls, sumMerge(http_errors) AS n_http_errors
    FROM calls_minute
    WHERE minute >= toStartOfMinute({since:DateTime64(3)}) AND minute < {until:DateTime64(3)}
      AND ({model:String} = '' OR model = {model:String})
    GROUP BY model
) AS c
LEFT JOIN
(
    SELECT model, countMerge(tool_calls) AS n_tool_calls, countMergeIf(tool_calls, malformed_kind != '') AS n_malformed
    FROM tool_calls_minute
    WHERE minute >= toStartOfMinute({since:DateTime64(3)}) AND minute < {until:DateTime64(3)}
      AND ({model:String} = '' OR model = {model:String})
    GROUP BY model
) AS t ON c.model = t.model
