-- One row per session, kept at ingest by the recorder (store/sessions.py): the session's full state as
-- arrays of its steps in (ts, call_id) order, and the ids of the tool results folded in. A new version is
-- written whenever an event joins the session; the version is the number of distinct events (steps and
-- results) in it, so a replayed event changes nothing. Figures that depend on the window's end (open or
-- abandoned, success, cascade) are decided at query time (analyzers/session_rows.sql). Ordered by session
-- key only: model, agent and outcome change between versions. `unplaced` counts results whose producing
-- call is not a step of the row: such a session is recomputed from the raw rows at query time.
CREATE TABLE IF NOT EXISTS sessions
(
    skey String,
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    agent String,
    agent_key String,
    user_id String,
    properties Map(String, String),
    first_ts DateTime64(3, 'UTC'),
    last_ts DateTime64(3, 'UTC'),
    step_call Array(UUID),
    step_ts Array(DateTime64(3, 'UTC')),
    step_model Array(LowCardinality(String)),
    step_requested Array(LowCardinality(String)),
    step_upstream_failed Array(UInt8),
    step_ok Array(UInt8),
    step_final Array(UInt8),
    step_tools Array(UInt32),
    step_malformed Array(UInt32),
    step_hash Array(UInt64),
    step_results Array(UInt32),
    step_errors Array(UInt32),
    sigs Array(UInt64),
    result_ids Array(String),
    result_producer Array(UUID),
    result_error Array(UInt8),
    unplaced UInt32,
    updated_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY skey
SETTINGS non_replicated_deduplication_window = 10000
