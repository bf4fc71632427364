-- Closes the seed of one spend counter: adds what was spent before it opened and ends it, if the token is
-- still the seed's (a reset or another seeder may have ended it) and, unless late_count is -1, no job has
-- settled since the seeder counted the late ones (it must then count again: that job's usage record may
-- have reached the database after the seeder read it).
--
-- KEYS: 1 spend hash
-- ARGV: 1 token, 2 micro-dollars spent before the seed opened, 3 late_count (-1: commit regardless)
-- Returns 1 committed, 0 not this seed's to close, -1 a job settled meanwhile.
local unpack = unpack or table.unpack  -- Lua 5.1 in Redis, 5.4 in the embedded stand-in
if redis.call('HGET', KEYS[1], 'seeding') ~= ARGV[1] then return 0 end
local late = {}
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(name, 1, 5) == 'late:' then late[#late + 1] = name end
end
if tonumber(ARGV[3]) >= 0 and #late ~= tonumber(ARGV[3]) then return -1 end
redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
redis.call('HDEL', KEYS[1], 'seeding', 'last_id', unpack(late))
return 1
