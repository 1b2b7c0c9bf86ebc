-- Per-model reliability report. Needs the CTEs steps and session_rows. Parameters: until, abandon_s,
-- cascade_run, model (String, empty = all). Call and tool-call figures count toward each call's own model;
-- session figures toward the session's model (most steps; ties: the later one).
WITH
    call_figures AS
    (
        SELECT
            model,
            any(upstream) AS upstream,
            count() AS llm_calls,
            countIf(status >= 400 OR status = 0) AS http_errors,
            countIf(failed) AS failed_steps,
            countIf(superseded) AS retries,
            countIf(recovered) AS recovered_failures,
            quantiles(0.5, 0.95)(latency_ms) AS latency,
            quantileIf(0.5)(ifNull(ttfb_ms, 0), ttfb_ms IS NOT NULL) AS ttft_p50,
            countIf(ttfb_ms IS NOT NULL) AS ttft_n,
            sum(ifNull(input_tokens, 0)) AS input_tokens,
            sum(ifNull(output_tokens, 0)) AS output_tokens,
            sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
            sum(ifNull(cache_write_tokens, 0)) AS cache_write_tokens
        FROM steps
        GROUP BY model
    ),
    tool_figures AS
    (
        SELECT
            model,
            sum(tool_call_count) AS tool_calls,
            sum(n_malformed) AS malformed_calls,
            sumMap(malformed_kinds, arrayMap(x -> toUInt64(1), malformed_kinds)) AS by_kind,
            sum(n_err) AS tool_errors,
            sum(n_results) AS tool_results
        FROM steps
        GROUP BY model
    ),
    session_figures AS
    (
        SELECT
            model,
            count() AS sessions,
            countIf(outcome = 'open') AS open_sessions,
            countIf(outcome = 'abandoned') AS abandoned_sessions,
            countIf(outcome = 'success') AS successful_sessions,
            countIf(cascade) AS cascade_sessions,
            countIf(loop) AS loop_sessions
        FROM session_rows
        GROUP BY model
    )
SELECT
    c.model AS model,
    c.upstream AS upstream,
    c.llm_calls AS llm_calls,
    t.tool_calls AS tool_calls,
    t.malformed_calls AS malformed_calls,
    if(t.tool_calls = 0, NULL, t.malformed_calls / t.tool_calls) AS malformed_rate,
    mapFromArrays(t.by_kind.1, t.by_kind.2) AS malformed_by_kind,
    t.tool_errors AS tool_errors,
    if(t.tool_results = 0, NULL, t.tool_errors / t.tool_results) AS tool_error_rate,
    s.sessions AS sessions,
    s.open_sessions AS open_sessions,
    s.abandoned_sessions AS abandoned_sessions,
    s.successful_sessions AS successful_sessions,
    if(s.sessions - s.open_sessions = 0, NULL, s.successful_sessions / (s.sessions - s.open_sessions)) AS session_success_rate,
    c.failed_steps AS failed_steps,
    c.retries AS retries,
    c.recovered_failures AS recovered_failures,
    if(c.failed_steps = 0, NULL, c.recovered_failures / c.failed_steps) AS recovery_rate,
    s.cascade_sessions AS cascade_sessions,
    if(s.sessions - s.open_sessions = 0, NULL, s.cascade_sessions / (s.sessions - s.open_sessions)) AS cascade_rate,
    s.loop_sessions AS loop_sessions,
    if(c.llm_calls = 0, NULL, c.http_errors / c.llm_calls) AS http_error_rate,
    c.latency[1] AS latency_p50_ms,
    c.latency[2] AS latency_p95_ms,
    if(c.ttft_n = 0, NULL, c.ttft_p50) AS ttft_p50_ms,
    c.input_tokens AS input_tokens,
    c.output_tokens AS output_tokens,
    c.cache_read_tokens AS cache_read_tokens,
    c.cache_write_tokens AS cache_write_tokens
FROM call_figures AS c
LEFT JOIN tool_figures AS t ON c.model = t.model
LEFT JOIN session_figures AS s ON c.model = s.model
WHERE {model:String} = '' OR c.model = {model:String}
ORDER BY c.llm_calls DESC, c.model
