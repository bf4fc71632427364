-- Admission and, when it admits, the job's creation, in one step (issue 17: one round trip fewer per request,
-- and no admitted request can be left without its job). The writes are the ones the API built for the job's
-- record, its tenant's listing index and its queue entry (shared/pending_writes.py records them on a redis-py
-- pipeline that is never sent), run here in their order; a refused request writes nothing.
--
-- KEYS: admit_fn.lua's 16, then the keys the writes touch.
-- ARGV: admit_fn.lua's 16; 17 the number of writes; then per write: the index in KEYS of its key (0: a
--       command without one, e.g. PUBLISH), the count of its other arguments, the command, those arguments.
-- Returns admit_fn.lua's reply.
local reply = admit_request()
if reply[1] ~= 1 then return reply end
local at = 18
for _ = 1, tonumber(ARGV[17]) do
  local key_index, count = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  local call = {ARGV[at + 2]}
  if key_index > 0 then call[2] = KEYS[key_index] end
  for i = 1, count do call[#call + 1] = ARGV[at + 2 + i] end
  redis.call(unpack(call))
  at = at + 3 + count
end
return reply
