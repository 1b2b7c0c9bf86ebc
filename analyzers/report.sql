-- Per-model reliability report. Call figures (counts, tokens, latency, tool calls and malformed calls) are read
-- from llm_calls directly and count toward each call's own model; step figures (failed steps, retries,
-- recoveries, tool errors and results) toward each call's own model too, summed from the sessions' m_* maps;
-- session figures toward the session's model (most steps; ties: the later one). Needs the CTE session_rows.
-- Parameters: since, until (DateTime64(3)), agent ('' = all), model ('' = all), abandon_s, cascade_run.
-- report_reference.sql computes the same figures from every step at query time (the tests compare them).
WITH
    call_figures AS
    (
        SELECT
            model,
            any(upstream) AS upstream,
            count() AS llm_calls,
            countIf(status >= 400 OR status = 0) AS http_errors,
            quantiles(0.5, 0.95)(latency_ms) AS latency,
            quantileIf(0.5)(ifNull(ttfb_ms, 0), ttfb_ms IS NOT NULL) AS ttft_p50,
            countIf(ttfb_ms IS NOT NULL) AS ttft_n,
            sum(ifNull(input_tokens, 0)) AS input_tokens,
            sum(ifNull(output_tokens, 0)) AS output_tokens,
            sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
            sum(ifNull(cache_write_tokens, 0)) AS cache_write_tokens,
            sum(tool_call_count) AS tool_calls,
            sum(malformed_count) AS malformed_calls,
            sumMap(malformed_kinds, arrayMap(x -> toUInt64(1), malformed_kinds)) AS by_kind
        FROM llm_calls
        WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND endpoint != 'other'
          AND ({agent:String} = '' OR agent = {agent:String})
        GROUP BY model
    ),
    session_figures AS
    (
        -- one pass over the session rows: step figures per model of each call, session figures per session model
        SELECT
            sumMap(m_failed) AS failed,
            sumMap(m_retries) AS retries,
            sumMap(m_recovered) AS recovered,
            sumMap(m_errors) AS errors,
            sumMap(m_results) AS results,
            sumMap(map(model, toUInt64(1))) AS sessions,
            sumMap(map(model, toUInt64(outcome = 'open'))) AS open_sessions,
            sumMap(map(model, toUInt64(outcome = 'abandoned'))) AS abandoned_sessions,
            sumMap(map(model, toUInt64(outcome = 'success'))) AS successful_sessions,
            sumMap(map(model, toUInt64(cascade))) AS cascade_sessions,
            sumMap(map(model, toUInt64(loop))) AS loop_sessions,
            sumMap(map(model, toUInt64(recomputed))) AS sessions_recomputed
        FROM session_rows
    )
SELECT
    c.model AS model,
    c.upstream AS upstream,
    c.llm_calls AS llm_calls,
    c.tool_calls AS tool_calls,
    c.malformed_calls AS malformed_calls,
    if(c.tool_calls = 0, NULL, c.malformed_calls / c.tool_calls) AS malformed_rate,
    mapFromArrays(c.by_kind.1, c.by_kind.2) AS malformed_by_kind,
    s.errors[c.model] AS tool_errors,
    if(s.results[c.model] = 0, NULL, s.errors[c.model] / s.results[c.model]) AS tool_error_rate,
    s.sessions[c.model] AS sessions,
    s.open_sessions[c.model] AS open_sessions,
    s.abandoned_sessions[c.model] AS abandoned_sessions,
    s.successful_sessions[c.model] AS successful_sessions,
    if(s.sessions[c.model] - s.open_sessions[c.model] = 0, NULL, s.successful_sessions[c.model] / (s.sessions[c.model] - s.open_sessions[c.model])) AS session_success_rate,
    s.failed[c.model] AS failed_steps,
    s.retries[c.model] AS retries,
    s.recovered[c.model] AS recovered_failures,
    if(s.failed[c.model] = 0, NULL, s.recovered[c.model] / s.failed[c.model]) AS recovery_rate,
    s.cascade_sessions[c.model] AS cascade_sessions,
    if(s.sessions[c.model] - s.open_sessions[c.model] = 0, NULL, s.cascade_sessions[c.model] / (s.sessions[c.model] - s.open_sessions[c.model])) AS cascade_rate,
    s.loop_sessions[c.model] AS loop_sessions,
    s.sessions_recomputed[c.model] AS sessions_recomputed,
    if(c.llm_calls = 0, NULL, c.http_errors / c.llm_calls) AS http_error_rate,
    c.latency[1] AS latency_p50_ms,
    c.latency[2] AS latency_p95_ms,
    if(c.ttft_n = 0, NULL, c.ttft_p50) AS ttft_p50_ms,
    c.input_tokens AS input_tokens,
    c.output_tokens AS output_tokens,
    c.cache_read_tokens AS cache_read_tokens,
    c.cache_write_tokens AS cache_write_tokens
FROM call_figures AS c
CROSS JOIN session_figures AS s
WHERE {model:String} = '' OR c.model = {model:String}
ORDER BY c.llm_calls DESC, c.model
