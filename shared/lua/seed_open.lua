-- Opens the seed of one spend counter (shared/budget.py): unless it is seeded already, creates it at 0 with
-- the seed's token and the id of the usage stream's newest entry. Settlements from here on add to it (and
-- note themselves as late); the entries up to that id, and the usage records in the database, are the
-- seed's to count. A seed already under way is joined: its token and stream id are returned.
--
-- KEYS: 1 spend hash, 2 usage stream
-- ARGV: 1 token, 2 ttl_s
-- Returns {state, token, last_id}: state 'ready' (nothing to do), 'joined' or 'opened'.
if redis.call('HEXISTS', KEYS[1], 'seeding') == 1 then
  return {'joined', redis.call('HGET', KEYS[1], 'seeding'), redis.call('HGET', KEYS[1], 'last_id')}
end
if redis.call('HEXISTS', KEYS[1], 'spent') == 1 then return {'ready', '', ''} end
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local last_id = '0-0'
if #newest > 0 then last_id = newest[1][1] end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'spent', 0, 'seeding', ARGV[1], 'last_id', last_id)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return {'opened', ARGV[1], last_id}
