-- Claims a queued or running job for an attempt, in one round trip: unless the record is gone or already
-- ended, marks it running and appends the attempt's first event (start, or reset for a retry).
--
-- KEYS: 1 job hash, 2 job event stream
-- ARGV: 1 attempt, 2 started_at, 3 worker_id, 4 event kind, 5 event data (JSON), 6 stream maxlen,
--       7 stream ttl_s
-- Returns the record's fields as they were before the claim (flat name/value list), or false.
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  return false
end
local before = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'running', 'attempt', ARGV[1], 'started_at', ARGV[2], 'worker_id', ARGV[3])
-- The first start takes the id 0-1 (shared/streams.py FIRST_START_ID), unless the stream has entries.
if ARGV[4] ~= 'start' or redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '0-1', 't', ARGV[4], 'd', ARGV[5]).err then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 't', ARGV[4], 'd', ARGV[5])
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
return before
