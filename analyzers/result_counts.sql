-- Tool results in the window per producing call: how many came back and how many are errors. The recorder
-- notes the producing call on each result; results it could not place are matched to tool calls here.
-- Which producing calls are counted is the composition's scope (analyzers/runner.py replaces the
-- /*scope:column*/ marker): every call's, or those of the CTE call_keys (the calls a report recomputes) and
-- any the few results not placed by the recorder lead to (a second reference to call_keys there would
-- compute it again).
-- Parameters: since, until (DateTime64(3)).
SELECT call_id, sum(err) AS n_err, count() AS n_results
FROM
(
    -- each result once, at its latest classification (a GROUP BY over the window: FINAL would merge the
    -- whole day's partition)
    SELECT any(producer_call_id) AS call_id, toUInt64(argMax(error_rule, classified_at) != '') AS err
    FROM tool_results
    WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
      AND producer_call_id != toUUID('00000000-0000-0000-0000-000000000000') AND (/*scope:producer_call_id*/1)
    GROUP BY result_uid
    UNION ALL
    SELECT t.call_id AS call_id, toUInt64(r.error_rule != '') AS err
    FROM
    (
        SELECT call_id, upstream, tool_call_id
        FROM tool_calls
        WHERE ts >= {since:DateTime64(3)} - INTERVAL 1 DAY AND ts < {until:DateTime64(3)}
          AND tool_call_id IN (
              SELECT tool_call_id FROM tool_results
              WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
                AND producer_call_id = toUUID('00000000-0000-0000-0000-000000000000')
          )
    ) AS t
    INNER JOIN
    (
        SELECT upstream, tool_call_id, argMax(error_rule, classified_at) AS error_rule
        FROM tool_results
        WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
          AND producer_call_id = toUUID('00000000-0000-0000-0000-000000000000')
        GROUP BY upstream, tool_call_id
    ) AS r ON t.upstream = r.upstream AND t.tool_call_id = r.tool_call_id
)
GROUP BY call_id
