-- Fields the analyzers need, computed once by the recorder: malformed-call kinds, result outcomes,
-- and the keys that group calls into sessions without any header.
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS conv_key String DEFAULT '';
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS opening_key String DEFAULT '';
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS first_prior_tool_call_id String DEFAULT '';
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS previous_response_id String DEFAULT '';
ALTER TABLE tool_calls ADD COLUMN IF NOT EXISTS malformed_kind LowCardinality(String) DEFAULT '';
ALTER TABLE tool_calls ADD COLUMN IF NOT EXISTS malformed_detail String DEFAULT '';
ALTER TABLE tool_calls ADD COLUMN IF NOT EXISTS conv_key String DEFAULT '';
ALTER TABLE tool_results ADD COLUMN IF NOT EXISTS error_rule LowCardinality(String) DEFAULT '';
ALTER TABLE tool_results ADD COLUMN IF NOT EXISTS classified_at DateTime64(3, 'UTC') DEFAULT now64(3);
