-- Each agent's first call on a model it had not used before, within the window: the marks a chart puts on
-- its time axis. An agent is the Toolwatch-Agent header, or else the upstream and the API-key fingerprint.
-- An agent's first model (within a lookback of 30 days before the window) is not a switch.
-- Parameters: since, until (DateTime64(3)).
SELECT agent, model, first_ts AS ts
FROM
(
    SELECT agent, model, first_ts, min(first_ts) OVER (PARTITION BY agent) AS agent_first
    FROM
    (
        SELECT
            if(agent != '', agent, concat(upstream, ':', key_fingerprint)) AS agent,
            model,
            min(ts) AS first_ts
        FROM llm_calls
        WHERE ts >= {since:DateTime64(3)} - INTERVAL 30 DAY AND ts < {until:DateTime64(3)}
          AND endpoint != 'other' AND model != ''
        GROUP BY agent, model
    )
)
WHERE first_ts >= {since:DateTime64(3)} AND first_ts > agent_first
ORDER BY ts, agent
