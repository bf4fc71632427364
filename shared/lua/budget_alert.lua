-- budget_alert.lua: after a job's cost was added to an owner's spend (its settlement; the owner is a tenant or
-- one of its API keys), send each alert threshold the spend has now reached, once per budget period and budget
-- amount: the SADD on the period's fired set is the exactly-once point (Redis runs one script at a time, so of
-- two workers settling at once only one adds a given threshold). A threshold sent queues a webhook as job ends
-- do (the delivery stream, worker/webhooks.py signs, retries and dead-letters it); its body is kept under the
-- event's key for the sender to read. A counter being seeded (shared/budget.py) is not complete yet: nothing
-- is sent until the seed closes. A fired set without its `restored` member was lost (or never made): nothing
-- is sent, -1 asks the caller to restore it from the database's record of thresholds sent, then call again.
--
-- keys: 1 the period's spend hash, 2 the period's fired set, 3 webhook delivery stream
-- argv: 1 budget micros, 2 fired set TTL s, 3 event key prefix, 4 event TTL s, 5 body fields (JSON object),
--       then per alert: alert id, url, thresholds (ascending percents, comma-separated)
-- returns -1, or {event id, alert id, percent} of each threshold sent
local spend = redis.call('HGET', KEYS[1], 'spent')
local budget = tonumber(ARGV[1])
if not spend or budget <= 0 or redis.call('HEXISTS', KEYS[1], 'seeding') == 1 then return {} end
if redis.call('SISMEMBER', KEYS[2], 'restored') == 0 then return -1 end
local spent = tonumber(spend)
local fields = cjson.decode(ARGV[5])
local sent = {}
for i = 6, #ARGV, 3 do
  local alert_id, url = ARGV[i], ARGV[i + 1]
  for pct in string.gmatch(ARGV[i + 2], '%d+') do
    -- The member names the budget: after a change of budget, a threshold is another amount, sent afresh.
    -- (A set written before the budget was part of the member holds `<alert id>:<percent>`: those count too.)
    local member = alert_id .. ':' .. pct .. ':' .. ARGV[1]
    if spent * 100 >= tonumber(pct) * budget and redis.call('SISMEMBER', KEYS[2], alert_id .. ':' .. pct) == 0
        and redis.call('SADD', KEYS[2], member) == 1 then
      -- Deterministic: a receiver can drop a repeat delivery (retries are at least once) by this id.
      local event_id = 'evt_budget_' .. alert_id .. '_' .. fields.period_id .. '_' .. pct
      fields.id, fields.alert_id, fields.threshold_pct, fields.spent_usd = event_id, alert_id, tonumber(pct), spent / 1e6
      redis.call('SET', ARGV[3] .. event_id, cjson.encode(fields), 'EX', ARGV[4])
      redis.call('XADD', KEYS[3], '*', 'job_id', event_id, 'url', url)
      sent[#sent + 1] = {event_id, alert_id, pct}
    end
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return sent
