-- Claims due webhook deliveries for one sender: members of the schedule scored at or before now are pushed
-- a lease into the future and returned, atomically, so two senders never attempt the same delivery at once,
-- and a sender that dies mid-attempt leaves it to the others when the lease runs out (at-least-once).
--
-- KEYS: 1 delivery schedule (sorted set, member: delivery JSON, score: ms when due)
-- ARGV: 1 now (ms), 2 lease end (ms), 3 most members to claim
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
