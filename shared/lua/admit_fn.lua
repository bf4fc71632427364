-- Atomic admission of one request for one tenant and the API key it came with: requests and tokens per minute
-- (sliding-window logs, so no 60-second window ever holds more than the limit, however the requests are
-- timed), concurrent jobs (a sorted set of job ids with expiry), and a budget reservation. The key's own
-- limits and budget (issue 15) are counters of the same kinds under the key's id, checked inside the tenant's:
-- a request must fit both. Either every check passes and every counter moves, or nothing moves. Shared by
-- all API processes, so limits hold across replicas.
--
-- Budget: what the current period has spent (the spend hash, seeded from the database) plus every
-- reservation in flight (the owner's holds, whatever period or budget they were made under) plus this
-- request's worst case must fit. Every request with a cost records a hold, budget or not, so a budget set
-- while requests run counts them.
--
-- Backpressure is checked here too, at no extra round trip: with more jobs waiting in the fair queue
-- (shared/fair_queue.py) than the request's class allows, it is refused as 'queue_full'.
--
-- KEYS: 1 requests log, 2 tokens log, 3 tokens sum, 4 concurrency zset, 5 spend hash of the budget's period,
--       6 and 7 the fair queue's ready sets (any two keys when queue_limit is 0), 8 holds zset, 9 holds sum;
--       10-16 the key's: requests log, tokens log, tokens sum, concurrency zset, spend hash, holds zset, holds
--       sum (any keys when ARGV 12 is 0: never touched)
-- ARGV: 1 now_ms, 2 rpm_limit, 3 tpm_limit, 4 tokens, 5 conc_limit, 6 job_id, 7 conc_expiry_ms,
--       8 budget_micros (-1: none), 9 reserve_micros, 10 hold_expiry_ms, 11 queue_limit (0: none),
--       12 key counted (1/0), 13 key rpm_limit, 14 key tpm_limit, 15 key conc_limit, 16 key budget_micros (-1)
-- Returns {allowed, reason, retry_after_ms, rpm_remaining, rpm_reset_ms, tpm_remaining, tpm_reset_ms,
--          budget_state, budget_used_micros}; the key's refusals have reasons prefixed 'key_'. budget_state is
--          "missing" (the tenant's) or "key_missing" when that spend hash must be seeded first (absent, or a
--          seed is under way); budget_used_micros is spent + held (+ this request's reservation when
--          admitted) of the budget that refused, else the tenant's, -1 without a budget.
--
-- Defined as a function (admit.lua returns its reply; admit_create.lua also creates the admitted job): a
-- refusal returns early from it.
local function admit_request()
  local WINDOW = 60000
  local now = tonumber(ARGV[1])
  local since = now - WINDOW
  local rpm_limit, tpm_limit, tokens = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local job_id = ARGV[6]
  local keyed = ARGV[12] == '1'
  local k_rpm, k_tpm, k_conc = 0, 0, 0
  local k_budget = -1
  if keyed then
    k_rpm, k_tpm, k_conc, k_budget = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
  end

  local function newest_reset(key)
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    if #newest == 0 then return 0 end
    return tonumber(newest[2]) + WINDOW - now
  end

  -- Requests: one log entry per admitted request. Returns the count in the window and the wait when full.
  local function requests_in(log, limit)
    if limit <= 0 then return 0, 0 end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', since)
    local used = redis.call('ZCARD', log)
    if used < limit then return used, 0 end
    local oldest = redis.call('ZRANGE', log, used - limit, used - limit, 'WITHSCORES')
    return used, tonumber(oldest[2]) + WINDOW - now
  end

  -- Tokens: entries "job_id:tokens" and a running sum, pruned as entries leave the window.
  local function tokens_in(log, sum, limit)
    if limit <= 0 then return 0, 0 end
    local expired = redis.call('ZRANGEBYSCORE', log, '-inf', since)
    for _, member in ipairs(expired) do
      redis.call('DECRBY', sum, tonumber(string.match(member, ':(%-?%d+)$')))
    end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', since)
    local used = tonumber(redis.call('GET', sum) or '0')
    if used + tokens <= limit then return used, 0 end
    local freed, entries = 0, redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      freed = freed + tonumber(string.match(entries[i], ':(%-?%d+)$'))
      if used - freed + tokens <= limit then return used, tonumber(entries[i + 1]) + WINDOW - now end
    end
    return used, 0
  end

  local rpm_used, rpm_wait = requests_in(KEYS[1], rpm_limit)
  local k_rpm_used, k_rpm_wait = 0, 0
  if keyed then k_rpm_used, k_rpm_wait = requests_in(KEYS[10], k_rpm) end
  local tpm_used, tpm_wait = tokens_in(KEYS[2], KEYS[3], tpm_limit)
  local k_tpm_used, k_tpm_wait = 0, 0
  if keyed then k_tpm_used, k_tpm_wait = tokens_in(KEYS[11], KEYS[12], k_tpm) end

  local budget_used = -1
  local function reply(ok, reason, wait, budget_state)
    local rpm_rem = math.max(0, rpm_limit - rpm_used - ok)
    local tpm_rem = math.max(0, tpm_limit - tpm_used - ok * tokens)
    return {ok, reason, math.ceil(wait), rpm_rem, math.ceil(newest_reset(KEYS[1])), tpm_rem,
            math.ceil(newest_reset(KEYS[2])), budget_state, budget_used}
  end
  if rpm_limit > 0 and rpm_used >= rpm_limit then return reply(0, 'requests', rpm_wait, '') end
  if k_rpm > 0 and k_rpm_used >= k_rpm then return reply(0, 'key_requests', k_rpm_wait, '') end
  if tpm_limit > 0 and tokens > tpm_limit then return reply(0, 'tokens_too_large', 0, '') end
  if tpm_limit > 0 and tpm_used + tokens > tpm_limit then return reply(0, 'tokens', tpm_wait, '') end
  if k_tpm > 0 and tokens > k_tpm then return reply(0, 'key_tokens_too_large', 0, '') end
  if k_tpm > 0 and k_tpm_used + tokens > k_tpm then return reply(0, 'key_tokens', k_tpm_wait, '') end

  local queue_limit = tonumber(ARGV[11] or '0')
  if queue_limit > 0 and redis.call('ZCARD', KEYS[6]) + redis.call('ZCARD', KEYS[7]) >= queue_limit then
    return reply(0, 'queue_full', 0, '')
  end

  local function slots_full(zset, limit)
    if limit <= 0 then return false end
    redis.call('ZREMRANGEBYSCORE', zset, '-inf', now)
    return redis.call('ZCARD', zset) >= limit
  end
  local conc_limit = tonumber(ARGV[5])
  if slots_full(KEYS[4], conc_limit) then return reply(0, 'concurrency', 1000, '') end
  if keyed and slots_full(KEYS[13], k_conc) then return reply(0, 'key_concurrency', 1000, '') end

  -- Micro-dollar amounts reach Redis commands as the strings they came in: Lua would print a number past
  -- 1e14 in exponent form, which INCRBY refuses (an unbounded reservation is 2^50).
  local budget = tonumber(ARGV[8])
  local reserve = tonumber(ARGV[9])
  -- Holds past their expiry belong to jobs that can no longer end (their record is gone): drop them.
  local function prune_holds(holds, sum)
    local lapsed = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
    for _, member in ipairs(lapsed) do
      redis.call('DECRBY', sum, string.match(member, ':(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  end
  -- Spent plus held, or nil when the spend hash must be seeded first.
  local function committed(spend, sum)
    if redis.call('HEXISTS', spend, 'spent') == 0 or redis.call('HEXISTS', spend, 'seeding') == 1 then return nil end
    return tonumber(redis.call('HGET', spend, 'spent')) + tonumber(redis.call('GET', sum) or '0')
  end
  if budget >= 0 or reserve > 0 then prune_holds(KEYS[8], KEYS[9]) end
  if keyed and (k_budget >= 0 or reserve > 0) then prune_holds(KEYS[15], KEYS[16]) end
  if budget >= 0 then
    budget_used = committed(KEYS[5], KEYS[9])
    if budget_used == nil then budget_used = -1 return reply(0, 'budget_unseeded', 0, 'missing') end
    if budget_used + reserve > budget then return reply(0, 'budget', 0, '') end
  end
  if keyed and k_budget >= 0 then
    local k_used = committed(KEYS[14], KEYS[16])
    if k_used == nil then return reply(0, 'key_budget_unseeded', 0, 'key_missing') end
    if k_used + reserve > k_budget then budget_used = k_used return reply(0, 'key_budget', 0, '') end
  end
  if budget >= 0 then budget_used = budget_used + reserve end

  local function count_request(log, tlog, tsum, slots, holds, hsum, r_limit, t_limit, c_limit)
    if r_limit > 0 then
      redis.call('ZADD', log, now, job_id)
      redis.call('PEXPIRE', log, WINDOW * 2)
    end
    if t_limit > 0 then
      redis.call('ZADD', tlog, now, job_id .. ':' .. tokens)
      redis.call('INCRBY', tsum, tokens)
      redis.call('PEXPIRE', tlog, WINDOW * 2)
      redis.call('PEXPIRE', tsum, WINDOW * 2)
    end
    if c_limit > 0 then
      redis.call('ZADD', slots, now + tonumber(ARGV[7]), job_id)
      redis.call('PEXPIRE', slots, tonumber(ARGV[7]))
    end
    if reserve > 0 then
      local hold_ms = tonumber(ARGV[10])
      redis.call('ZADD', holds, now + hold_ms, job_id .. ':' .. ARGV[9])
      redis.call('INCRBY', hsum, ARGV[9])
      redis.call('PEXPIRE', holds, hold_ms)
      redis.call('PEXPIRE', hsum, hold_ms)
    end
  end
  count_request(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[8], KEYS[9], rpm_limit, tpm_limit, conc_limit)
  if keyed then
    count_request(KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[15], KEYS[16], k_rpm, k_tpm, k_conc)
  end
  return reply(1, 'ok', 0, '')
end
