-- Per-session indicator counts per agent and model over a range of session starts, from session_facts (each
-- session at its latest version; the most recent `limit` sessions of each agent and model). malformed and
-- tool_error count every session (from its first such step); cascade and failed (closed, not a success)
-- count closed sessions only (x_<indicator>: sessions with it). `split_n` counts the sessions that started
-- at or after `split`. A few sessions with each indicator come along as examples.
-- Parameters: since, until, split (DateTime64(3)), agent and model ('' = all), limit (UInt32).
SELECT
    agent,
    model,
    count() AS n,
    countIf(ts >= {split:DateTime64(3)}) AS split_n,
    countIf(outcome != 'open') AS closed,
    countIf(malformed) AS x_malformed,
    countIf(tool_error) AS x_tool_error,
    countIf(cascade) AS x_cascade,
    countIf(outcome IN ('failed', 'abandoned')) AS x_failed,
    groupArrayIf(5)(skey, malformed) AS malformed_examples,
    groupArrayIf(5)(skey, tool_error) AS tool_error_examples,
    groupArrayIf(5)(skey, cascade) AS cascade_examples,
    groupArrayIf(5)(skey, outcome IN ('failed', 'abandoned')) AS failed_examples
FROM
(
    SELECT agent, s_model AS model, skey, s_ts AS ts, s_outcome AS outcome, s_malformed AS malformed,
           s_tool_error AS tool_error, s_cascade AS cascade
    FROM
    (
        -- each session at its latest version (a GROUP BY over the range: FINAL would merge whole parts)
        SELECT
            agent,
            skey,
            argMax(model, updated_at) AS s_model,
            argMax(ts, updated_at) AS s_ts,
            argMax(outcome, updated_at) AS s_outcome,
            argMax(malformed, updated_at) AS s_malformed,
            argMax(tool_error, updated_at) AS s_tool_error,
            argMax(cascade, updated_at) AS s_cascade
        FROM session_facts
        WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
          AND ({agent:String} = '' OR agent = {agent:String})
        GROUP BY agent, skey
    )
    WHERE s_model != '' AND ({model:String} = '' OR s_model = {model:String})
    ORDER BY s_ts DESC, skey
    LIMIT {limit:UInt32} BY agent, s_model
)
GROUP BY agent, model
