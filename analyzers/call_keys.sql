-- Each LLM call in the window with its session key: the Toolwatch-Session-Id header (h:), else the session the
-- recorder linked it to, else the joins below (a Responses chain followed back to its first keyed response;
-- the call that produced the earliest tool-call id it resends; a failed first turn joins the session its
-- retry started), else its own conversation key, else the call alone (c:). Which calls are read is the
-- composition's scope (analyzers/runner.py replaces the /*scope*/ marker, over placed_hash): every call in the
-- window, the calls the recorder could not place, those of the sessions a report recomputes, or one session's.
-- Needs the CTEs prior_keys, response_keys and retry_keys (the joins). Parameters: since, until
-- (DateTime64(3)), agent (String, empty = all).
SELECT
    k.*,
    multiIf(
        k.session_id != '', concat('h:', k.session_id),
        k.link_key != '', concat('k:', k.link_key),
        pr.rkey != '', concat('k:', pr.rkey),
        p.pkey != '', concat('k:', p.pkey),
        k.conv_key != '', concat('k:', k.conv_key),
        o.skey0 != '', o.skey0,
        concat('c:', toString(k.call_id))
    ) AS skey
FROM
(
    SELECT call_id, ts, model, model_requested, upstream, agent, status, outcome, finish_reason, tool_call_count, malformed_count,
           malformed_kinds, tool_sigs, latency_ms, ttfb_ms, input_tokens, output_tokens, cache_read_tokens,
           cache_write_tokens, user_id, properties, key_fingerprint, session_id, conv_key, opening_key,
           first_prior_tool_call_id, link_key, previous_response_id, request_hash,
           -- the session the recorder placed the call in ('' = only the joins below can tell): the rule of
           -- store/sessions.py placed_key
           multiIf(
               session_id != '', concat('h:', session_id),
               link_key != '', concat('k:', link_key),
               previous_response_id != '' OR first_prior_tool_call_id != '' OR conv_key = '', '',
               concat('k:', conv_key)
           ) AS placed
    FROM llm_calls FINAL
    -- the scope reads placed_hash (migration 0013), the hash of `placed`, before any other column; a call's
    -- versions are equal (a replay), so filtering them before they are merged is exact
    PREWHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND (/*scope*/1)
    WHERE endpoint != 'other' AND ({agent:String} = '' OR agent = {agent:String})
) AS k
LEFT JOIN prior_keys AS p ON k.first_prior_tool_call_id = p.tool_call_id
LEFT JOIN response_keys AS pr ON k.previous_response_id = pr.start_id
ASOF LEFT JOIN retry_keys AS o ON k.opening_key = o.opening_key AND k.ts <= o.ts
