-- Atomic admission of one request for one tenant: requests and tokens per minute (sliding-window logs, so
-- no 60-second window ever holds more than the limit, however the requests are timed), concurrent jobs (a
-- sorted set of job ids with expiry), and a budget reservation. Either every check passes and every
-- counter moves, or nothing moves. Shared by all API processes, so limits hold across replicas.
--
-- Budget: what the current period has spent (the spend hash, seeded from the database) plus every
-- reservation in flight (the tenant's holds, whatever period or budget they were made under) plus this
-- request's worst case must fit. Every request with a cost records a hold, budget or not, so a budget set
-- while requests run counts them.
--
-- Backpressure is checked here too, at no extra round trip: with more jobs waiting in the fair queue
-- (shared/fair_queue.py) than the request's class allows, it is refused as 'queue_full'.
--
-- KEYS: 1 requests log, 2 tokens log, 3 tokens sum, 4 concurrency zset, 5 spend hash of the budget's period,
--       6 and 7 the fair queue's ready sets (any two keys when queue_limit is 0), 8 holds zset, 9 holds sum
-- ARGV: 1 now_ms, 2 rpm_limit, 3 tpm_limit, 4 tokens, 5 conc_limit, 6 job_id, 7 conc_expiry_ms,
--       8 budget_micros (-1: none), 9 reserve_micros, 10 hold_expiry_ms, 11 queue_limit (0: none)
-- Returns {allowed, reason, retry_after_ms, rpm_remaining, rpm_reset_ms, tpm_remaining, tpm_reset_ms,
--          budget_state, budget_used_micros}; budget_state is "missing" when the spend hash must be seeded
--          first (absent, or a seed is under way); budget_used_micros is spent + held (+ this request's
--          reservation when admitted), -1 without a budget.
local WINDOW = 60000
local now = tonumber(ARGV[1])
local since = now - WINDOW
local rpm_limit, tpm_limit, tokens = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local job_id = ARGV[6]

local function newest_reset(key)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return tonumber(newest[2]) + WINDOW - now
end

-- Requests: one log entry per admitted request.
local rpm_used, rpm_wait = 0, 0
if rpm_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', since)
  rpm_used = redis.call('ZCARD', KEYS[1])
  if rpm_used >= rpm_limit then
    local oldest = redis.call('ZRANGE', KEYS[1], rpm_used - rpm_limit, rpm_used - rpm_limit, 'WITHSCORES')
    rpm_wait = tonumber(oldest[2]) + WINDOW - now
  end
end

-- Tokens: entries "job_id:tokens" and a running sum, pruned as entries leave the window.
local tpm_used, tpm_wait = 0, 0
if tpm_limit > 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', since)
  for _, member in ipairs(expired) do
    redis.call('DECRBY', KEYS[3], tonumber(string.match(member, ':(%-?%d+)$')))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', since)
  tpm_used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tpm_used + tokens > tpm_limit then
    local freed, entries = 0, redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      freed = freed + tonumber(string.match(entries[i], ':(%-?%d+)$'))
      if tpm_used - freed + tokens <= tpm_limit then tpm_wait = tonumber(entries[i + 1]) + WINDOW - now break end
    end
  end
end

local budget_used = -1
local function reply(ok, reason, wait, budget_state)
  local rpm_rem = math.max(0, rpm_limit - rpm_used - ok)
  local tpm_rem = math.max(0, tpm_limit - tpm_used - ok * tokens)
  return {ok, reason, math.ceil(wait), rpm_rem, math.ceil(newest_reset(KEYS[1])), tpm_rem,
          math.ceil(newest_reset(KEYS[2])), budget_state, budget_used}
end
if rpm_limit > 0 and rpm_used >= rpm_limit then return reply(0, 'requests', rpm_wait, '') end
if tpm_limit > 0 and tokens > tpm_limit then return reply(0, 'tokens_too_large', 0, '') end
if tpm_limit > 0 and tpm_used + tokens > tpm_limit then return reply(0, 'tokens', tpm_wait, '') end

local queue_limit = tonumber(ARGV[11] or '0')
if queue_limit > 0 and redis.call('ZCARD', KEYS[6]) + redis.call('ZCARD', KEYS[7]) >= queue_limit then
  return reply(0, 'queue_full', 0, '')
end

local conc_limit = tonumber(ARGV[5])
if conc_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= conc_limit then return reply(0, 'concurrency', 1000, '') end
end

-- Micro-dollar amounts reach Redis commands as the strings they came in: Lua would print a number past
-- 1e14 in exponent form, which INCRBY refuses (an unbounded reservation is 2^50).
local budget = tonumber(ARGV[8])
local reserve = tonumber(ARGV[9])
if budget >= 0 or reserve > 0 then
  -- Holds past their expiry belong to jobs that can no longer end (their record is gone): drop them.
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now)
  for _, member in ipairs(lapsed) do
    redis.call('DECRBY', KEYS[9], string.match(member, ':(%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
end
if budget >= 0 then
  if redis.call('HEXISTS', KEYS[5], 'spent') == 0 or redis.call('HEXISTS', KEYS[5], 'seeding') == 1 then
    return reply(0, 'budget_unseeded', 0, 'missing')
  end
  budget_used = tonumber(redis.call('HGET', KEYS[5], 'spent')) + tonumber(redis.call('GET', KEYS[9]) or '0')
  if budget_used + reserve > budget then return reply(0, 'budget', 0, '') end
  budget_used = budget_used + reserve
end

if rpm_limit > 0 then
  redis.call('ZADD', KEYS[1], now, job_id)
  redis.call('PEXPIRE', KEYS[1], WINDOW * 2)
end
if tpm_limit > 0 then
  redis.call('ZADD', KEYS[2], now, job_id .. ':' .. tokens)
  redis.call('INCRBY', KEYS[3], tokens)
  redis.call('PEXPIRE', KEYS[2], WINDOW * 2)
  redis.call('PEXPIRE', KEYS[3], WINDOW * 2)
end
if conc_limit > 0 then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[7]), job_id)
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[7]))
end
if reserve > 0 then
  local hold_ms = tonumber(ARGV[10])
  redis.call('ZADD', KEYS[8], now + hold_ms, job_id .. ':' .. ARGV[9])
  redis.call('INCRBY', KEYS[9], ARGV[9])
  redis.call('PEXPIRE', KEYS[8], hold_ms)
  redis.call('PEXPIRE', KEYS[9], hold_ms)
end
return reply(1, 'ok', 0, '')
