-- Per-call aggregates the recorder computes once, so a report over millions of tool calls needs no join
-- between tool calls and results: malformed kinds and loop signatures on the call; on each result, the
-- call that produced its tool call; on each call, the session key of the call its tool-call ids lead to.
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS malformed_count UInt32 DEFAULT 0;
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS malformed_kinds Array(LowCardinality(String)) DEFAULT [];
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS tool_sigs Array(UInt64) DEFAULT [];
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS link_key String DEFAULT '';
ALTER TABLE tool_results ADD COLUMN IF NOT EXISTS producer_call_id UUID DEFAULT toUUID('00000000-0000-0000-0000-000000000000');
