-- Settles one job's admission when it ends, exactly once (run inside the job's terminal transaction):
-- corrects the tokens-per-minute charge to the tokens actually used, frees the concurrency slot, and turns
-- the budget reservation into the actual cost (released entirely when nothing was spent).
--
-- KEYS: 1 tpm TAT, 2 concurrency zset, 3 budget hash
-- ARGV: 1 now_ms, 2 tpm interval_ms per token (0: no token limit), 3 token delta (actual - estimated),
--       4 job_id, 5 reserved_micros, 6 actual_micros, 7 budget_ttl_s
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or now)
  local corrected = tat + tonumber(ARGV[3]) * interval
  if corrected > now then
    redis.call('SET', KEYS[1], corrected, 'PX', 120000)
  else
    redis.call('DEL', KEYS[1])
  end
end
redis.call('ZREM', KEYS[2], ARGV[4])
local reserved = tonumber(ARGV[5])
local actual = tonumber(ARGV[6])
if reserved > 0 or actual > 0 then
  redis.call('HINCRBY', KEYS[3], 'reserved', -reserved)
  redis.call('HINCRBY', KEYS[3], 'spent', actual)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[7]))
end
return 1
