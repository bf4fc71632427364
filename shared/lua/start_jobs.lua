-- Starts queued jobs for one worker in one round trip (arq's start_jobs does a WATCH, EXISTS, ZSCORE and
-- MULTI/PSETEX/EXEC per job): a job starts when it is due and no worker holds it. Starting marks it in
-- progress for `in_progress_ms` and pushes its queue score that far ahead, so queue scans skip running jobs
-- (both are renewed while the job runs, and lapse if the worker dies).
--
-- KEYS: 1 queue zset, 2.. the jobs' in-progress keys (arq:in-progress:<id>)
-- ARGV: 1 now_ms, 2 in_progress_ms, 3.. the job ids, in the order of KEYS[2..]
-- Returns a flat list of job id, original score for each job started.
local now = tonumber(ARGV[1])
local started = {}
for i = 3, #ARGV do
  local job_id = ARGV[i]
  local in_progress = KEYS[i - 1]
  local score = redis.call('ZSCORE', KEYS[1], job_id)
  if score and tonumber(score) <= now and redis.call('EXISTS', in_progress) == 0 then
    redis.call('PSETEX', in_progress, ARGV[2], '1')
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), job_id)
    started[#started + 1] = job_id
    started[#started + 1] = score
  end
end
return started
