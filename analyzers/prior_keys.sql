-- The first tool call of the call that the earliest tool-call id a call resends leads to, for the calls the
-- recorder could not link (link_key empty): the session call_keys.sql joins such a call to. Parameters:
-- since, until (DateTime64(3)).
SELECT tool_call_id, any(conv_key) AS pkey
FROM tool_calls
WHERE ts >= {since:DateTime64(3)} - INTERVAL 1 DAY AND ts < {until:DateTime64(3)} AND call_index = 0
  AND tool_call_id IN (
      SELECT first_prior_tool_call_id FROM llm_calls
      WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
        AND link_key = '' AND first_prior_tool_call_id != ''
  )
GROUP BY tool_call_id
