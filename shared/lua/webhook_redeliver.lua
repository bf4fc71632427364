-- Sends dead-lettered webhook deliveries again: each entry still in the dead-letter stream is deleted from it
-- and, in the same step, scheduled as a first attempt due now. The XDEL's answer guards the move, so two
-- admins replaying the same entry at once schedule it once.
--
-- KEYS: 1 dead-letter stream, 2 delivery schedule (sorted set, member: delivery JSON, score: ms when due)
-- ARGV: 1 now (ms), then pairs of (entry id, delivery member)
-- Returns the entry ids moved.
local moved = {}
for i = 2, #ARGV, 2 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i + 1])
    moved[#moved + 1] = ARGV[i]
  end
end
return moved
