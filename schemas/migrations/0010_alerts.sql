-- Regression alerts. The evaluator (alerts/evaluate.py, in the recorder process) keeps every table here.
--
-- session_facts: one row per session and its per-session indicators, refreshed for the sessions that
-- changed since the last evaluation (the latest version wins). ts is the session's first step.
CREATE TABLE IF NOT EXISTS session_facts
(
    agent String,
    skey String,
    model LowCardinality(String),
    requested LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    last_ts DateTime64(3, 'UTC'),
    steps UInt32,
    outcome LowCardinality(String),
    malformed Bool,
    tool_error Bool,
    cascade Bool,
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (agent, skey);

-- switch_events: an agent's traffic moving to a model it had not used within the gap, with the share the
-- new model has taken since (versioned: the share is updated as traffic arrives).
CREATE TABLE IF NOT EXISTS switch_events
(
    id String,
    agent String,
    ts DateTime64(3, 'UTC'),
    old_model String,
    new_model String,
    requested String,
    kind LowCardinality(String),
    share Float64,
    n_old UInt32,
    n_new UInt32,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- alerts: every version of every alert; the highest version is its current state.
CREATE TABLE IF NOT EXISTS alerts
(
    id String,
    version UInt64,
    agent String,
    kind LowCardinality(String),
    state LowCardinality(String),
    old_model String,
    new_model String,
    metric LowCardinality(String),
    before Float64,
    after Float64,
    interval_low Float64,
    interval_high Float64,
    n_before UInt32,
    n_after UInt32,
    method String,
    detail String,
    examples Array(String),
    opened_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    resolved_at Nullable(DateTime64(3, 'UTC')),
    acknowledged_at Nullable(DateTime64(3, 'UTC')),
    acknowledged_by String
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- alert_looks: how far each sequential test has spent its error budget (one row per test and indicator),
-- so that a restart never looks at a checkpoint twice.
CREATE TABLE IF NOT EXISTS alert_looks
(
    test String,
    metric LowCardinality(String),
    looks UInt16,
    spent Float64,
    decided Bool,
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (test, metric);

-- alert_outbox: one notification per alert state change and target; delivered at least once, each with
-- its own idempotency key (versioned: attempts and delivery are recorded as new versions).
CREATE TABLE IF NOT EXISTS alert_outbox
(
    key String,
    target LowCardinality(String),
    alert_id String,
    state LowCardinality(String),
    payload String,
    created_at DateTime64(3, 'UTC'),
    attempts UInt32,
    last_error String,
    status LowCardinality(String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (key, target);

-- silences: notifications for matching alerts are held back until `until` (an alert id, or an agent and
-- optionally a kind).
CREATE TABLE IF NOT EXISTS silences
(
    id String,
    alert_id String,
    agent String,
    kind String,
    until DateTime64(3, 'UTC'),
    created_at DateTime64(3, 'UTC'),
    created_by String,
    comment String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
