-- Exactly once: every table the recorder writes, and every rollup target, remembers the tokens of its
-- last 10,000 inserted blocks (the recorder inserts one block per table per batch, with a token derived
-- from the batch's place in the spool), so a block written again after a failure or a crash is dropped.
ALTER TABLE llm_calls MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE tool_calls MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE tool_results MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE bodies MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE calls_minute MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE tool_calls_minute MODIFY SETTING non_replicated_deduplication_window = 10000
