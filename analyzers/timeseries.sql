-- Per-model time series over the window, one row per bucket of step_s seconds and model: volume, tool calls,
-- malformed calls by kind, tool results and errors, latency p50/p95 (of the calls in the bucket, read from
-- llm_calls as the report's call figures are), and the sessions that ended in the bucket (by their last
-- activity): closed, successful, cascading. Needs the CTEs window_results (result_counts.sql over every call
-- in the window) and session_rows.
-- Parameters: since, until, agent, step_s (UInt32), model ('' = all).
WITH
    calls AS
    (
        SELECT
            toStartOfInterval(l.ts, toIntervalSecond({step_s:UInt32})) AS t,
            l.model AS model,
            count() AS llm_calls,
            sum(l.tool_call_count) AS tool_calls,
            sum(l.malformed_count) AS malformed,
            sumMap(l.malformed_kinds, arrayMap(x -> toUInt64(1), l.malformed_kinds)) AS by_kind,
            sum(r.n_results) AS tool_results,
            sum(r.n_err) AS tool_errors,
            quantiles(0.5, 0.95)(l.latency_ms) AS latency
        FROM llm_calls AS l
        LEFT JOIN window_results AS r ON l.call_id = r.call_id
        WHERE l.ts >= {since:DateTime64(3)} AND l.ts < {until:DateTime64(3)} AND l.endpoint != 'other'
          AND ({agent:String} = '' OR l.agent = {agent:String})
          AND ({model:String} = '' OR l.model = {model:String})
        GROUP BY t, model
    ),
    ended AS
    (
        SELECT
            toStartOfInterval(last_ts, toIntervalSecond({step_s:UInt32})) AS t,
            model,
            countIf(outcome != 'open') AS closed,
            countIf(outcome = 'success') AS successful,
            countIf(cascade) AS cascading
        FROM session_rows
        WHERE {model:String} = '' OR model = {model:String}
        GROUP BY t, model
    )
SELECT
    if(c.model = '', e.t, c.t) AS t,
    if(c.model = '', e.model, c.model) AS model,
    c.llm_calls AS llm_calls,
    c.tool_calls AS tool_calls,
    c.malformed AS malformed,
    mapFromArrays(c.by_kind.1, c.by_kind.2) AS malformed_by_kind,
    c.tool_results AS tool_results,
    c.tool_errors AS tool_errors,
    if(c.llm_calls = 0, NULL, c.latency[1]) AS latency_p50_ms,
    if(c.llm_calls = 0, NULL, c.latency[2]) AS latency_p95_ms,
    e.closed AS sessions_closed,
    e.successful AS sessions_successful,
    e.cascading AS sessions_cascading
FROM calls AS c
FULL OUTER JOIN ended AS e ON c.t = e.t AND c.model = e.model
ORDER BY t, model
SETTINGS join_use_nulls = 0
