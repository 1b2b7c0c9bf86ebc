-- Alerts at their latest version, newest first. Parameters: open_only (UInt8), agent and kind ('' = all),
-- since (DateTime64(3): alerts open now, or updated since), until (DateTime64(3): opened before), last (UInt32).
SELECT *
FROM alerts FINAL
WHERE (NOT {open_only:UInt8} OR state = 'open')
  AND ({agent:String} = '' OR agent = {agent:String})
  AND ({kind:String} = '' OR kind = {kind:String})
  AND (state = 'open' OR updated_at >= {since:DateTime64(3)})
  AND opened_at < {until:DateTime64(3)}
ORDER BY opened_at DESC, id
LIMIT {last:UInt32}
