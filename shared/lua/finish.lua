-- Commits a job's end in one round trip, exactly once: unless the record is gone or already ended, writes
-- the outcome fields, appends the terminal event, adds the usage record to the usage stream, settles the
-- admission (settle_fn.lua is prepended), clears the cache's in-flight marker and stores the answer, and
-- queues the job's webhook delivery when the job has a callback URL (worker/webhooks.py sends it).
--
-- KEYS: 1 job hash, 2 job event stream, 3 usage stream, 4-21 settlement keys (see settle_fn.lua),
--       22 cache in-flight marker, 23 cache entry, 24 webhook delivery stream
-- ARGV: 1 record ttl_s, 2 event stream maxlen, 3 event kind, 4 event data (JSON), 5 usage maxlen,
--       6 usage row (JSON), 7 settle? (1/0), 8-14 settlement argv, 15 clear in-flight? (1/0),
--       16 cache ttl_s (0: store nothing), 17 cached answer (JSON), 18 number of outcome fields (n),
--       19.. outcome field names and values (2n)
-- Returns 1 when committed, 0 when the job had already ended (nothing written, nothing billed).
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  return 0
end
local unpack = unpack or table.unpack  -- Lua 5.1 in Redis, 5.4 in the embedded stand-in
local ttl_s = tonumber(ARGV[1])
local fields = {}
for i = 19, 18 + 2 * tonumber(ARGV[18]) do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ttl_s)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 't', ARGV[3], 'd', ARGV[4])
redis.call('EXPIRE', KEYS[2], ttl_s)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'row', ARGV[6])
if ARGV[7] == '1' then
  settle({unpack(KEYS, 4, 21)}, {unpack(ARGV, 8, 14)})
end
if ARGV[15] == '1' then redis.call('DEL', KEYS[22]) end
if tonumber(ARGV[16]) > 0 then redis.call('SET', KEYS[23], ARGV[17], 'EX', ARGV[16]) end
local callback = redis.call('HGET', KEYS[1], 'callback_url')
if callback and callback ~= '' then
  redis.call('XADD', KEYS[24], '*', 'job_id', redis.call('HGET', KEYS[1], 'id'), 'url', callback)
end
return 1
