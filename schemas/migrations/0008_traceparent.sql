-- The agent's W3C trace context (its traceparent header, forwarded unchanged): toolwatch's OpenTelemetry
-- spans for the call join that trace.
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS traceparent String DEFAULT ''
