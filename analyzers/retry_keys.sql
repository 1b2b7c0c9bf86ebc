-- A first turn that got no reply joins the session its retry started: the calls that opened a session with
-- the same opening key (call_keys.sql joins the next one in time). Parameters: since, until (DateTime64(3)).
SELECT opening_key, ts, concat('k:', conv_key) AS skey0
FROM llm_calls
WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND conv_key != '' AND session_id = ''
  AND opening_key IN (
      SELECT opening_key FROM llm_calls
      WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
        AND conv_key = '' AND opening_key != '' AND session_id = ''
  )
