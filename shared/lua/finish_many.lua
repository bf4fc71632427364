-- The ends of several jobs in one round trip (jobs that end in the same event-loop tick, see shared/jobs.py):
-- settle_fn.lua and finish_fn.lua are prepended. Each job's end is finish(keys, argv), run under pcall so that
-- one job's error is that job's alone (the ends before it stay committed, as separate calls would have).
--
-- KEYS: each job's keys in turn, FINISH_KEYS (ARGV 1) of them each
-- ARGV: 1 keys per job, 2 number of jobs, then per job: its number of arguments, then those arguments
-- Returns per job 1 (committed), 0 (had already ended) or the error's text.
local per_job, jobs = tonumber(ARGV[1]), tonumber(ARGV[2])
local results, at = {}, 3
for j = 0, jobs - 1 do
  local count = tonumber(ARGV[at])
  local keys, argv = {}, {}
  for i = 1, per_job do keys[i] = KEYS[j * per_job + i] end
  for i = 1, count do argv[i] = ARGV[at + i] end
  at = at + count + 1
  local ok, result = pcall(finish, keys, argv)
  if ok then
    results[#results + 1] = result
  else  -- a failed redis.call raises a table with its message in `err`
    results[#results + 1] = type(result) == 'table' and tostring(result.err) or tostring(result)
  end
end
return results
