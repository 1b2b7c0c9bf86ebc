-- Switch events (alerts/evaluate.py keeps them) that happened in the window, oldest first: the marks on the
-- dashboard's time axis. Parameters: since, until (DateTime64(3)), agent ('' = all).
SELECT id, agent, ts, old_model, new_model, requested, kind, share, n_old, n_new
FROM switch_events FINAL
WHERE ts >= {since:DateTime64(3)} AND ts < {until:DateTime64(3)}
  AND ({agent:String} = '' OR agent = {agent:String})
ORDER BY ts, id
