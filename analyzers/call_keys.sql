-- Each LLM call in the window with its session key: the Toolwatch-Session-Id header (h:), else the session the
-- recorder linked it to, else the joins below (a Responses chain followed back to its first keyed response;
-- the call that produced the earliest tool-call id it resends; a failed first turn joins the session its
-- retry started), else its own conversation key, else the call alone (c:). Which calls are read is the
-- composition's scope (analyzers/runner.py replaces the /*scope*/ marker): every call in the window, the
-- calls the recorder could not place, those of the sessions a report recomputes, or one session's.
-- Parameters: since, until (DateTime64(3)), agent (String, empty = all).
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
    WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND endpoint != 'other'
      AND ({agent:String} = '' OR agent = {agent:String})
      AND (/*scope*/1)
) AS k
LEFT JOIN
(
    -- calls the recorder could not link: the first tool call of the call their earliest id leads to
    SELECT tool_call_id, any(conv_key) AS pkey
    FROM tool_calls
    WHERE ts >= {since:DateTime64(3)} - INTERVAL 1 DAY AND ts < {until:DateTime64(3)} AND call_index = 0
      AND tool_call_id IN (
          SELECT first_prior_tool_call_id FROM llm_calls
          WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
            AND link_key = '' AND first_prior_tool_call_id != ''
      )
    GROUP BY tool_call_id
) AS p ON k.first_prior_tool_call_id = p.tool_call_id
LEFT JOIN
(
    -- Responses API calls the recorder could not link (cold memory, out of order): follow
    -- previous_response_id back, response by response, to the first one that has a session key
    SELECT start_id, argMin(key, depth) AS rkey
    FROM
    (
        WITH RECURSIVE chain AS (
            SELECT previous_response_id AS start_id, previous_response_id AS cur, '' AS key, 0 AS depth
            FROM llm_calls
            WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
              AND link_key = '' AND previous_response_id != ''
            GROUP BY previous_response_id
            UNION ALL
            SELECT c.start_id, l.previous_response_id,
                   if(l.link_key != '', l.link_key, l.conv_key), c.depth + 1
            FROM chain AS c
            INNER JOIN
            (
                SELECT response_id, previous_response_id, link_key, conv_key
                FROM llm_calls
                WHERE ts >= {since:DateTime64(3)} - INTERVAL 1 DAY AND ts < {until:DateTime64(3)}
                  AND response_id != ''
            ) AS l ON l.response_id = c.cur
            WHERE c.key = '' AND c.cur != '' AND c.depth < 200
        )
        SELECT start_id, key, depth FROM chain WHERE key != ''
    )
    GROUP BY start_id
) AS pr ON k.previous_response_id = pr.start_id
ASOF LEFT JOIN
(
    -- a first turn that got no reply joins the session its retry started
    SELECT opening_key, ts, concat('k:', conv_key) AS skey0
    FROM llm_calls
    WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)} AND conv_key != '' AND session_id = ''
      AND opening_key IN (
          SELECT opening_key FROM llm_calls
          WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
            AND conv_key = '' AND opening_key != '' AND session_id = ''
      )
) AS o ON k.opening_key = o.opening_key AND k.ts <= o.ts
