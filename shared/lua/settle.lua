-- Settles one job's admission when it ends, exactly once (run inside the job's terminal transaction):
-- replaces the token estimate in the tokens log with the tokens actually used, frees the concurrency slot,
-- and turns the budget reservation into the actual cost (released entirely when nothing was spent).
--
-- KEYS: 1 tokens log, 2 tokens sum, 3 concurrency zset, 4 budget hash
-- ARGV: 1 job_id, 2 tokens estimated (0: no token limit), 3 tokens used, 4 reserved_micros,
--       5 actual_micros, 6 budget_ttl_s
local job_id = ARGV[1]
local estimated, used = tonumber(ARGV[2]), tonumber(ARGV[3])
if estimated > 0 then
  local old = job_id .. ':' .. estimated
  local score = redis.call('ZSCORE', KEYS[1], old)
  if score then  -- still inside the window: charge what was really used
    redis.call('ZREM', KEYS[1], old)
    redis.call('ZADD', KEYS[1], score, job_id .. ':' .. used)
    redis.call('INCRBY', KEYS[2], used - estimated)
  end
end
redis.call('ZREM', KEYS[3], job_id)
local reserved = tonumber(ARGV[4])
local actual = tonumber(ARGV[5])
-- Lua's -0 reaches Redis as "-0", which HINCRBY refuses: only move counters that change.
if reserved > 0 then redis.call('HINCRBY', KEYS[4], 'reserved', 0 - reserved) end
if actual > 0 then redis.call('HINCRBY', KEYS[4], 'spent', actual) end
if reserved > 0 or actual > 0 then redis.call('EXPIRE', KEYS[4], tonumber(ARGV[6])) end
return 1
