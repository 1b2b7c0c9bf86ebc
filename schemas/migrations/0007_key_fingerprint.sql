-- The salted fingerprint of the API key a call carried ("" = none): reports and agents can group traffic
-- by key without the key being stored.
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS key_fingerprint String DEFAULT ''
