-- Per-model per-minute rollups of call and tool-call figures, kept by materialized views, so reports over
-- long windows read minutes, not rows. Session figures depend on later calls and are computed at query time.
CREATE TABLE IF NOT EXISTS calls_minute
(
    minute DateTime('UTC'),
    model LowCardinality(String),
    upstream LowCardinality(String),
    agent LowCardinality(String),
    llm_calls AggregateFunction(count),
    http_errors AggregateFunction(sum, UInt64),
    input_tokens AggregateFunction(sum, UInt64),
    output_tokens AggregateFunction(sum, UInt64),
    latency AggregateFunction(quantilesTDigest(0.5, 0.95), Float64),
    ttft AggregateFunction(quantileTDigest(0.5), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (model, upstream, agent, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS calls_minute_mv TO calls_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    model,
    upstream,
    agent,
    countState() AS llm_calls,
    sumState(toUInt64(status >= 400 OR status = 0)) AS http_errors,
    sumState(toUInt64(ifNull(input_tokens, 0))) AS input_tokens,
    sumState(toUInt64(ifNull(output_tokens, 0))) AS output_tokens,
    quantilesTDigestState(0.5, 0.95)(latency_ms) AS latency,
    quantileTDigestStateIf(0.5)(ifNull(ttfb_ms, 0.0), ttfb_ms IS NOT NULL) AS ttft
FROM llm_calls
WHERE endpoint != 'other'
GROUP BY minute, model, upstream, agent;

CREATE TABLE IF NOT EXISTS tool_calls_minute
(
    minute DateTime('UTC'),
    model LowCardinality(String),
    upstream LowCardinality(String),
    agent LowCardinality(String),
    malformed_kind LowCardinality(String),
    tool_calls AggregateFunction(count)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (model, upstream, agent, malformed_kind, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS tool_calls_minute_mv TO tool_calls_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    model,
    upstream,
    agent,
    malformed_kind,
    countState() AS tool_calls
FROM tool_calls
GROUP BY minute, model, upstream, agent, malformed_kind;
