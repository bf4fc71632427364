-- finish(keys, argv) commits a job's end, exactly once: unless the record is gone or already ended, writes
-- the outcome fields, appends the terminal event, adds the usage record to the usage stream, settles the
-- admission (settle_fn.lua is prepended), clears the cache's in-flight marker and stores the answer, and
-- queues the job's webhook delivery when the job has a callback URL (worker/webhooks.py sends it).
-- With arq's end (ARGV after the outcome fields), also does what arq's finish_job transaction did (see
-- worker/gateway_worker.py), whether or not the record had ended: the job leaves arq's queue, its
-- in-progress, retry and payload keys go, it leaves the abort set (when a cancel was asked) and its tenant's
-- running set, and it counts in the drain rate. arq's result key is not written: the record holds the outcome.
--
-- KEYS: 1 job hash, 2 job event stream, 3 usage stream, 4-21 settlement keys (see settle_fn.lua),
--       22 cache in-flight marker, 23 cache entry, 24 webhook delivery stream; with arq's end:
--       25 in-progress key, 26 retry key, 27 arq payload, 28 arq queue, 29 abort set, 30 running set (the
--       job hash when the tenant is unknown), 31 drain-rate bucket
-- ARGV: 1 record ttl_s, 2 event stream maxlen, 3 event kind, 4 event data (JSON), 5 usage maxlen,
--       6 usage row (JSON), 7 settle? (1/0), 8-14 settlement argv, 15 clear in-flight? (1/0),
--       16 cache ttl_s (0: store nothing), 17 cached answer (JSON), 18 number of outcome fields (n),
--       19.. outcome field names and values (2n), then: arq's end? (1/0), job id, drain bucket ttl_s
-- Returns 1 when committed, 0 when the job had already ended (nothing written, nothing billed).
local unpack = unpack or table.unpack  -- Lua 5.1 in Redis, 5.4 in the embedded stand-in

local function finish(keys, argv)
  local state = redis.call('HMGET', keys[1], 'status', 'callback_url', 'id', 'cancel_requested')
  local status = state[1]
  local tail = 19 + 2 * tonumber(argv[18])
  if argv[tail] == '1' then
    local job_id = argv[tail + 1]
    redis.call('DEL', keys[25], keys[26], keys[27])
    redis.call('ZREM', keys[28], job_id)
    if state[4] == '1' then redis.call('ZREM', keys[29], job_id) end
    if keys[30] ~= keys[1] then redis.call('ZREM', keys[30], job_id) end
    if redis.call('INCR', keys[31]) == 1 then redis.call('EXPIRE', keys[31], tonumber(argv[tail + 2])) end
  end
  if not status or status == 'succeeded' or status == 'failed' or status == 'cancelled' then
    return 0
  end
  local ttl_s = tonumber(argv[1])
  local fields = {}
  for i = 19, tail - 1 do fields[#fields + 1] = argv[i] end
  redis.call('HSET', keys[1], unpack(fields))
  redis.call('EXPIRE', keys[1], ttl_s)
  redis.call('XADD', keys[2], 'MAXLEN', '~', argv[2], '*', 't', argv[3], 'd', argv[4])
  redis.call('EXPIRE', keys[2], ttl_s)
  redis.call('XADD', keys[3], 'MAXLEN', '~', argv[5], '*', 'row', argv[6])
  if argv[7] == '1' then
    settle({unpack(keys, 4, 21)}, {unpack(argv, 8, 14)})
  end
  if argv[15] == '1' then redis.call('DEL', keys[22]) end
  if tonumber(argv[16]) > 0 then redis.call('SET', keys[23], argv[17], 'EX', argv[16]) end
  local callback = state[2]
  if callback and callback ~= '' then
    redis.call('XADD', keys[24], '*', 'job_id', state[3], 'url', callback)
  end
  return 1
end
