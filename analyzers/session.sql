-- One session's timeline, step by step, with each tool call and its outcome (ok, error, pending while the
-- session is open, missing after). Needs the CTEs result_counts, steps, session_rows and tool_outcomes.
-- Parameters: session (String: as listed by sessions.sql; a bare header id works too).
SELECT
    s.call_id AS call_id,
    s.ts AS ts,
    s.model AS model,
    s.status AS status,
    s.outcome AS outcome,
    s.finish_reason AS finish_reason,
    toBool(s.failed) AS failed,
    toBool(s.upstream_failed) AS upstream_failed,
    toBool(s.recovered) AS recovered,
    toBool(s.final_answer) AS final_answer,
    toBool(s.superseded) AS retried,
    t.calls AS tool_calls
FROM steps AS s
LEFT JOIN
(
    SELECT
        call_id,
        arraySort(x -> x.1, groupArray((
            call_index, tool_call_id, name, raw_arguments, malformed_kind,
            multiIf(has_result AND error_rule != '', 'error', has_result, 'ok', open, 'pending', 'missing'), error_rule,
            result_head
        ))) AS calls
    FROM tool_outcomes
    CROSS JOIN (
        SELECT count() > 0 AS open FROM session_rows
        WHERE skey IN ({session:String}, concat('h:', {session:String})) AND outcome = 'open'
    ) AS o
    WHERE call_id IN (SELECT call_id FROM steps WHERE skey IN ({session:String}, concat('h:', {session:String})))
    GROUP BY call_id
) AS t ON s.call_id = t.call_id
WHERE s.skey IN ({session:String}, concat('h:', {session:String}))
ORDER BY s.ts, s.call_id
