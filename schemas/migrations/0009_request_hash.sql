-- A hash of each request's body: consecutive byte-identical requests after an upstream failure are one step
-- (the retries an SDK makes on its own are not failed steps of their own).
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS request_hash UInt64 DEFAULT 0
