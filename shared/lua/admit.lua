-- Atomic admission of one request for one tenant: requests/minute and tokens/minute (GCRA), concurrent
-- jobs (a sorted set of job ids with expiry), and a budget reservation. Either every check passes and every
-- counter moves, or nothing moves. Shared by all API processes, so limits hold across replicas.
--
-- KEYS: 1 rpm TAT, 2 tpm TAT, 3 concurrency zset, 4 budget hash
-- ARGV: 1 now_ms, 2 rpm_limit, 3 tpm_limit, 4 tokens, 5 conc_limit, 6 job_id, 7 conc_expiry_ms,
--       8 budget_micros (-1: none), 9 reserve_micros, 10 budget_ttl_s
-- Returns {allowed, reason, retry_after_ms, rpm_remaining, rpm_reset_ms, tpm_remaining, tpm_reset_ms,
--          budget_state}; budget_state is "missing" when the budget hash must be seeded first.
local PERIOD = 60000
local now = tonumber(ARGV[1])

local function gcra(key, limit, cost)
  if limit <= 0 then return true, 0, -1, 0, nil end
  local interval = PERIOD / limit
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - PERIOD
  if allow_at > now then
    local remaining = math.max(0, math.floor((now - (tat - PERIOD)) / interval))
    return false, allow_at - now, remaining, tat - now, nil
  end
  local remaining = math.floor((now - allow_at) / interval)
  return true, 0, remaining, new_tat - now, new_tat
end

local rpm_ok, rpm_wait, rpm_rem, rpm_reset, rpm_tat = gcra(KEYS[1], tonumber(ARGV[2]), 1)
local tpm_ok, tpm_wait, tpm_rem, tpm_reset, tpm_tat = gcra(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
local function reply(ok, reason, wait, budget_state)
  return {ok, reason, math.ceil(wait), rpm_rem, math.ceil(rpm_reset), tpm_rem, math.ceil(tpm_reset), budget_state}
end
if not rpm_ok then return reply(0, 'requests', rpm_wait, '') end
if not tpm_ok then
  if tonumber(ARGV[4]) * (PERIOD / tonumber(ARGV[3])) > PERIOD then return reply(0, 'tokens_too_large', 0, '') end
  return reply(0, 'tokens', tpm_wait, '')
end

local conc_limit = tonumber(ARGV[5])
if conc_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc_limit then return reply(0, 'concurrency', 1000, '') end
end

local budget = tonumber(ARGV[8])
local reserve = tonumber(ARGV[9])
if budget >= 0 then
  if redis.call('EXISTS', KEYS[4]) == 0 then return reply(0, 'budget_unseeded', 0, 'missing') end
  local spent = tonumber(redis.call('HGET', KEYS[4], 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', KEYS[4], 'reserved') or '0')
  if spent + reserved + reserve > budget then return reply(0, 'budget', 0, '') end
end

if rpm_tat then redis.call('SET', KEYS[1], rpm_tat, 'PX', PERIOD * 2) end
if tpm_tat then redis.call('SET', KEYS[2], tpm_tat, 'PX', PERIOD * 2) end
if conc_limit > 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[6])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[7]))
end
if budget >= 0 and reserve > 0 then
  redis.call('HINCRBY', KEYS[4], 'reserved', reserve)
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[10]))
end
return reply(1, 'ok', 0, '')
