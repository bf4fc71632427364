-- settle(keys, argv): settles one job's admission when it ends, exactly once (inside its terminal transaction):
-- replaces the token estimate in the tokens log with the tokens actually used, frees the concurrency slot,
-- releases the job's budget reservation (its hold), and adds the actual cost to the owner's spend in the
-- day, week, month and all-time periods of the job's end, in every one whose counter exists: whatever period
-- the owner's budget uses, now or after a change, its counter has the spend. A missing counter is seeded
-- from the usage records when a budget needs it; while a seed runs, the job id is noted (`late:<job_id>`)
-- so that the seed does not count this cost a second time (shared/budget.py). The owners are the tenant and,
-- when its admission counted one, the API key (issue 15), whose counters have the same shape.
--
-- keys: 1 tokens log, 2 tokens sum, 3 concurrency zset (the tokens log again when the job held no slot),
--       4 holds zset, 5 holds sum, 6-9 spend hashes;
--       10-18 the same for the key (any keys when argv 6 is 0: never touched)
-- argv: 1 job_id, 2 tokens estimated (0: no token limit), 3 tokens used, 4 reserved_micros, 5 actual_micros,
--       6 key counted (1/0), 7 the key's tokens estimated
local function settle_owner(keys, base, job_id, estimated, used, reserved, actual)
  if estimated > 0 then
    local old = job_id .. ':' .. estimated
    local score = redis.call('ZSCORE', keys[base + 1], old)
    if score then  -- still inside the window: charge what was really used
      redis.call('ZREM', keys[base + 1], old)
      redis.call('ZADD', keys[base + 1], score, job_id .. ':' .. used)
      redis.call('INCRBY', keys[base + 2], used - estimated)
    end
  end
  if keys[base + 3] ~= keys[base + 1] then redis.call('ZREM', keys[base + 3], job_id) end
  -- Amounts go to Redis as the strings they came in (see admit.lua); a hold that lapsed is already gone.
  if tonumber(reserved) > 0 and redis.call('ZREM', keys[base + 4], job_id .. ':' .. reserved) == 1 then
    redis.call('DECRBY', keys[base + 5], reserved)
  end
  -- A spend counter exists only with its 'spent' field (seed_open.lua creates both), so one EXISTS of the four
  -- says whether any is there: an owner without a budget (no counter seeded) costs one command, not four.
  local present = 0
  if tonumber(actual) > 0 then
    present = redis.call('EXISTS', keys[base + 6], keys[base + 7], keys[base + 8], keys[base + 9])
  end
  if present > 0 then
    for i = base + 6, base + 9 do
      if present == 4 or redis.call('EXISTS', keys[i]) == 1 then
        redis.call('HINCRBY', keys[i], 'spent', actual)
        if redis.call('HEXISTS', keys[i], 'seeding') == 1 then redis.call('HSET', keys[i], 'late:' .. job_id, 1) end
      end
    end
  end
end

local function settle(keys, argv)
  local used = tonumber(argv[3])
  settle_owner(keys, 0, argv[1], tonumber(argv[2]), used, argv[4], argv[5])
  if argv[6] == '1' then settle_owner(keys, 9, argv[1], tonumber(argv[7]), used, argv[4], argv[5]) end
  return 1
end
