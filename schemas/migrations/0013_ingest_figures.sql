-- What a report would otherwise compute from every row of the window, computed once by the engine when a row
-- is written (MATERIALIZED columns; rows written before this migration get theirs by MATERIALIZE COLUMN).
--
-- llm_calls.placed_hash: a hash of the session the recorder placed the call in (0: none, only the SQL linker
-- can tell), by the rule of store/sessions.py placed_key and analyzers/call_keys.sql. A report reads the calls
-- it must recompute by this one column, before anything else is read (PREWHERE), instead of the five string
-- columns the rule reads.
ALTER TABLE llm_calls
    ADD COLUMN IF NOT EXISTS placed_hash UInt64 MATERIALIZED multiIf(
        session_id != '', cityHash64(concat('h:', session_id)),
        link_key != '', cityHash64(concat('k:', link_key)),
        previous_response_id != '' OR first_prior_tool_call_id != '' OR conv_key = '', 0,
        cityHash64(concat('k:', conv_key))
    );

ALTER TABLE llm_calls MATERIALIZE COLUMN placed_hash SETTINGS mutations_sync = 2;

-- sessions: a session row's figures, computed by the engine when the row is written (MATERIALIZED columns: the recorder,
-- the backfill and reclassify insert the step arrays only), so that a report reads a few scalars per session
-- instead of every step. Only what does not depend on the window's end or on a report's parameters is kept:
-- open or abandoned, success, cascade and loop are decided at query time (analyzers/session_rows_stored.sql).
-- The definitions over the row's step arrays, which are in (ts, call_id) order, are those of
-- analyzers/session_rows_computed.sql over the raw rows: a retry replaces an upstream failure followed by the
-- same request; a failed step is recovered by a later step with a tool result that was not an error (tool
-- failures) or any later successful response (upstream failures); the session's model has the most steps
-- (ties: the later last step). The sess_* columns are ALIAS steps of those definitions (never stored); the
-- fig_* columns are stored.
ALTER TABLE sessions
    ADD COLUMN IF NOT EXISTS sess_n UInt64 ALIAS length(step_call),
    ADD COLUMN IF NOT EXISTS sess_ix Array(UInt32) ALIAS arrayEnumerate(step_call),
    ADD COLUMN IF NOT EXISTS sess_superseded Array(UInt8) ALIAS arrayMap(i -> step_upstream_failed[i] = 1
        AND step_hash[i] != 0 AND i < sess_n AND step_hash[i + 1] = step_hash[i], sess_ix),
    ADD COLUMN IF NOT EXISTS sess_tool_failed Array(UInt8) ALIAS arrayMap(i -> step_malformed[i] > 0
        OR step_errors[i] > 0, sess_ix),
    ADD COLUMN IF NOT EXISTS sess_failed Array(UInt8) ALIAS arrayMap(i -> (step_upstream_failed[i] = 1
        OR sess_tool_failed[i] = 1) AND sess_superseded[i] = 0, sess_ix),
    ADD COLUMN IF NOT EXISTS sess_last_tool_ok DateTime64(3, 'UTC') ALIAS arrayMax(arrayMap(i ->
        if(step_results[i] > step_errors[i], step_ts[i], toDateTime64(0, 3, 'UTC')), sess_ix)),
    ADD COLUMN IF NOT EXISTS sess_last_ok DateTime64(3, 'UTC') ALIAS arrayMax(arrayMap(i ->
        if(step_ok[i] = 1, step_ts[i], toDateTime64(0, 3, 'UTC')), sess_ix)),
    ADD COLUMN IF NOT EXISTS sess_recovered Array(UInt8) ALIAS arrayMap(i -> sess_failed[i] = 1 AND (
        (sess_tool_failed[i] = 1 AND sess_last_tool_ok > step_ts[i])
        OR (sess_tool_failed[i] = 0 AND step_upstream_failed[i] = 1 AND sess_last_ok > step_ts[i])), sess_ix),
    ADD COLUMN IF NOT EXISTS sess_flags Array(UInt8) ALIAS arrayFilter((f, s) -> s = 0, sess_failed, sess_superseded),
    ADD COLUMN IF NOT EXISTS sess_sigs Array(UInt64) ALIAS arraySort(sigs),
    ADD COLUMN IF NOT EXISTS sess_models Array(String) ALIAS arrayDistinct(arrayMap(x -> toString(x), step_model)),
    ADD COLUMN IF NOT EXISTS fig_model LowCardinality(String) MATERIALIZED arraySort((m, c, l) -> (c, l),
        sess_models,
        arrayMap(m -> arrayCount((x, s) -> x = m AND s = 0, step_model, sess_superseded), sess_models),
        arrayMap(m -> arrayMax(arrayFilter((t, x) -> x = m, step_ts, step_model)), sess_models))[-1],
    ADD COLUMN IF NOT EXISTS fig_requested String MATERIALIZED toString(step_requested[sess_n]),
    ADD COLUMN IF NOT EXISTS fig_first_step DateTime64(3, 'UTC') MATERIALIZED step_ts[1],
    ADD COLUMN IF NOT EXISTS fig_last_step DateTime64(3, 'UTC') MATERIALIZED step_ts[sess_n],
    ADD COLUMN IF NOT EXISTS fig_steps UInt64 MATERIALIZED arrayCount(x -> x = 0, sess_superseded),
    ADD COLUMN IF NOT EXISTS fig_malformed_steps UInt64 MATERIALIZED arrayCount(x -> x > 0, step_malformed),
    ADD COLUMN IF NOT EXISTS fig_tool_errors UInt64 MATERIALIZED arraySum(step_errors),
    ADD COLUMN IF NOT EXISTS fig_failed_steps UInt64 MATERIALIZED arrayCount(x -> x = 1, sess_failed),
    ADD COLUMN IF NOT EXISTS fig_unrecovered UInt64 MATERIALIZED
        arrayCount((f, r) -> f = 1 AND r = 0, sess_failed, sess_recovered),
    ADD COLUMN IF NOT EXISTS fig_max_run UInt64 MATERIALIZED arrayMax(arrayMap(x -> arraySum(x),
        arraySplit((f, z) -> z, sess_flags, arrayMap(f -> f = 0, sess_flags)))),
    ADD COLUMN IF NOT EXISTS fig_max_repeat UInt64 MATERIALIZED if(empty(sess_sigs), 0, arrayMax(arrayMap(
        x -> length(x), arraySplit((v, i) -> i = 1 OR v != sess_sigs[i - 1], sess_sigs, arrayEnumerate(sess_sigs))))),
    ADD COLUMN IF NOT EXISTS fig_last_pending UInt8 MATERIALIZED
        step_tools[sess_n] > 0 AND step_tools[sess_n] > step_results[sess_n],
    ADD COLUMN IF NOT EXISTS fig_last_final UInt8 MATERIALIZED step_final[sess_n] = 1,
    ADD COLUMN IF NOT EXISTS fig_m_failed Map(LowCardinality(String), UInt64) MATERIALIZED mapFromArrays(sess_models,
        arrayMap(m -> toUInt64(arrayCount((x, f) -> x = m AND f = 1, step_model, sess_failed)), sess_models)),
    ADD COLUMN IF NOT EXISTS fig_m_retries Map(LowCardinality(String), UInt64) MATERIALIZED mapFromArrays(sess_models,
        arrayMap(m -> toUInt64(arrayCount((x, f) -> x = m AND f = 1, step_model, sess_superseded)), sess_models)),
    ADD COLUMN IF NOT EXISTS fig_m_recovered Map(LowCardinality(String), UInt64) MATERIALIZED mapFromArrays(
        sess_models,
        arrayMap(m -> toUInt64(arrayCount((x, f) -> x = m AND f = 1, step_model, sess_recovered)), sess_models)),
    ADD COLUMN IF NOT EXISTS fig_m_errors Map(LowCardinality(String), UInt64) MATERIALIZED mapFromArrays(sess_models,
        arrayMap(m -> toUInt64(arraySum((x, e) -> if(x = m, e, 0), step_model, step_errors)), sess_models)),
    ADD COLUMN IF NOT EXISTS fig_m_results Map(LowCardinality(String), UInt64) MATERIALIZED mapFromArrays(
        sess_models,
        arrayMap(m -> toUInt64(arraySum((x, e) -> if(x = m, e, 0), step_model, step_results)), sess_models));

ALTER TABLE sessions
    MATERIALIZE COLUMN fig_model,
    MATERIALIZE COLUMN fig_requested,
    MATERIALIZE COLUMN fig_first_step,
    MATERIALIZE COLUMN fig_last_step,
    MATERIALIZE COLUMN fig_steps,
    MATERIALIZE COLUMN fig_malformed_steps,
    MATERIALIZE COLUMN fig_tool_errors,
    MATERIALIZE COLUMN fig_failed_steps,
    MATERIALIZE COLUMN fig_unrecovered,
    MATERIALIZE COLUMN fig_max_run,
    MATERIALIZE COLUMN fig_max_repeat,
    MATERIALIZE COLUMN fig_last_pending,
    MATERIALIZE COLUMN fig_last_final,
    MATERIALIZE COLUMN fig_m_failed,
    MATERIALIZE COLUMN fig_m_retries,
    MATERIALIZE COLUMN fig_m_recovered,
    MATERIALIZE COLUMN fig_m_errors,
    MATERIALIZE COLUMN fig_m_results
SETTINGS mutations_sync = 2
