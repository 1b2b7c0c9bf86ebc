-- The Azure OpenAI deployment a call went to ('' for other APIs), next to the model it returned.
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS deployment LowCardinality(String) DEFAULT '';
