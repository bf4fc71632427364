-- settle(keys, argv): settles one job's admission when it ends, exactly once (inside its terminal transaction):
-- replaces the token estimate in the tokens log with the tokens actually used, frees the concurrency slot,
-- and turns the budget reservation into the actual cost (released entirely when nothing was spent).
--
-- keys: 1 tokens log, 2 tokens sum, 3 concurrency zset, 4 budget hash
-- argv: 1 job_id, 2 tokens estimated (0: no token limit), 3 tokens used, 4 reserved_micros,
--       5 actual_micros, 6 budget_ttl_s
local function settle(keys, argv)
  local job_id = argv[1]
  local estimated, used = tonumber(argv[2]), tonumber(argv[3])
  if estimated > 0 then
    local old = job_id .. ':' .. estimated
    local score = redis.call('ZSCORE', keys[1], old)
    if score then  -- still inside the window: charge what was really used
      redis.call('ZREM', keys[1], old)
      redis.call('ZADD', keys[1], score, job_id .. ':' .. used)
      redis.call('INCRBY', keys[2], used - estimated)
    end
  end
  redis.call('ZREM', keys[3], job_id)
  local reserved = tonumber(argv[4])
  local actual = tonumber(argv[5])
  -- Lua's -0 reaches Redis as "-0", which HINCRBY refuses: only move counters that change.
  if reserved > 0 then redis.call('HINCRBY', keys[4], 'reserved', 0 - reserved) end
  if actual > 0 then redis.call('HINCRBY', keys[4], 'spent', actual) end
  if reserved > 0 or actual > 0 then redis.call('EXPIRE', keys[4], tonumber(argv[6])) end
  return 1
end
