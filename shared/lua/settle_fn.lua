-- settle(keys, argv): settles one job's admission when it ends, exactly once (inside its terminal transaction):
-- replaces the token estimate in the tokens log with the tokens actually used, frees the concurrency slot,
-- releases the job's budget reservation (its hold), and adds the actual cost to the tenant's spend in the
-- day, week, month and all-time periods of the job's end, in every one whose counter exists: whatever period
-- the tenant's budget uses, now or after a change, its counter has the spend. A missing counter is seeded
-- from the usage records when a budget needs it; while a seed runs, the job id is noted (`late:<job_id>`)
-- so that the seed does not count this cost a second time (shared/budget.py).
--
-- keys: 1 tokens log, 2 tokens sum, 3 concurrency zset, 4 holds zset, 5 holds sum, 6-9 spend hashes
-- argv: 1 job_id, 2 tokens estimated (0: no token limit), 3 tokens used, 4 reserved_micros, 5 actual_micros
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
  -- Amounts go to Redis as the strings they came in (see admit.lua); a hold that lapsed is already gone.
  if tonumber(argv[4]) > 0 and redis.call('ZREM', keys[4], job_id .. ':' .. argv[4]) == 1 then
    redis.call('DECRBY', keys[5], argv[4])
  end
  if tonumber(argv[5]) > 0 then
    for i = 6, 9 do
      if redis.call('HEXISTS', keys[i], 'spent') == 1 then
        redis.call('HINCRBY', keys[i], 'spent', argv[5])
        if redis.call('HEXISTS', keys[i], 'seeding') == 1 then redis.call('HSET', keys[i], 'late:' .. job_id, 1) end
      end
    end
  end
  return 1
end
