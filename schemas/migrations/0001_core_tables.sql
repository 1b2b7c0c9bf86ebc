-- LLM calls, tool calls, tool results and bodies. Partitioned by day, ordered for per-model time ranges.
-- ReplacingMergeTree on stable ids: a frame parsed twice (recorder restart) collapses to one row.
CREATE TABLE IF NOT EXISTS llm_calls
(
    call_id UUID,
    ts DateTime64(3, 'UTC'),
    upstream LowCardinality(String),
    api LowCardinality(String),
    endpoint LowCardinality(String),
    method LowCardinality(String),
    path String,
    model_requested Nullable(String),
    model_returned Nullable(String),
    model LowCardinality(String),
    stream Bool,
    status UInt16,
    outcome LowCardinality(String),
    error Nullable(String),
    parse_status LowCardinality(String),
    parse_error Nullable(String),
    finish_reason LowCardinality(Nullable(String)),
    response_id Nullable(String),
    input_tokens Nullable(UInt64),
    cache_read_tokens Nullable(UInt64),
    cache_write_tokens Nullable(UInt64),
    output_tokens Nullable(UInt64),
    latency_ms Float64,
    ttfb_ms Nullable(Float64),
    request_bytes UInt64,
    response_bytes UInt64,
    declared_tools Array(String),
    tool_schemas Array(String),
    tool_call_count UInt32,
    tool_result_count UInt32,
    prior_tool_call_ids Array(String),
    message_count UInt32,
    text_chars UInt64,
    session_id String,
    agent LowCardinality(String),
    user_id String,
    properties Map(String, String),
    request_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (model, ts, call_id)
TTL toDateTime(ts) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS tool_calls
(
    tool_call_uid UUID,
    call_id UUID,
    ts DateTime64(3, 'UTC'),
    upstream LowCardinality(String),
    model LowCardinality(String),
    session_id String,
    agent LowCardinality(String),
    call_index UInt32,
    tool_call_id String,
    name String,
    raw_arguments String,
    arguments Nullable(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (model, ts, tool_call_uid)
TTL toDateTime(ts) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS tool_results
(
    result_uid UUID,
    call_id UUID,
    ts DateTime64(3, 'UTC'),
    upstream LowCardinality(String),
    session_id String,
    agent LowCardinality(String),
    tool_call_id String,
    content String,
    content_bytes UInt64,
    truncated Bool,
    is_error Nullable(Bool)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (tool_call_id, result_uid)
TTL toDateTime(ts) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS bodies
(
    call_id UUID,
    ts DateTime64(3, 'UTC'),
    request_body String,
    response_body String,
    request_truncated Bool,
    response_truncated Bool
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (ts, call_id)
TTL toDateTime(ts) + INTERVAL 7 DAY;
