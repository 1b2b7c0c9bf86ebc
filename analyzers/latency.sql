-- Per-model call latency for one agent over the window (every attempt of a parsed endpoint). An agent is
-- the Toolwatch-Agent header, or else the upstream and the API-key fingerprint. Parameters: since, until
-- (DateTime64(3)), agent, models (Array(String)).
SELECT
    model,
    count() AS llm_calls,
    quantile(0.5)(latency_ms) AS latency_p50_ms,
    quantile(0.95)(latency_ms) AS latency_p95_ms,
    quantileIf(0.5)(ifNull(ttfb_ms, 0), ttfb_ms IS NOT NULL) AS ttft_p50_ms
FROM llm_calls
WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND endpoint != 'other'
  AND has({models:Array(String)}, model)
  AND if(agent != '', agent, concat(upstream, ':', key_fingerprint)) = {agent:String}
GROUP BY model
