-- Responses API calls the recorder could not link (cold memory, out of order): previous_response_id
-- followed back, response by response, to the first one that has a session key (rkey), for call_keys.sql.
-- Parameters: since, until (DateTime64(3)).
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
