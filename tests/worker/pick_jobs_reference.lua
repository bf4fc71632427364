-- The picker as it was before issue 17 (commit 49a965d): one job at a time, reading the fair queue's state for
-- every job. tests/worker/test_pick_equivalence.py checks that shared/lua/pick_jobs.lua, which reads it once per
-- call, picks the same jobs in the same order. Not used by the gateway.
-- Picks and starts up to `free` jobs for one worker in one round trip (see shared/fair_queue.py):
--   1. jobs due in arq's queue (retries, and jobs whose worker died: their lease lapsed), oldest first, within
--      their tenant's max_running cap and, for batch jobs, the batch slots;
--   2. batch jobs that waited longer than the aging bound move into the interactive class;
--   3. interactive, then batch: per class, the active tenant with the lowest pass that is under its
--      max_running cap gives its oldest job; its pass advances by 1/weight (stride scheduling). At most
--      `batch_free` batch jobs start (the worker keeps its interactive-only slots free).
-- A started job is claimed as arq's start_jobs would: its in-progress key lives one lease, and its arq queue
-- score is pushed one lease ahead (both renewed while it runs); it is counted in its tenant's running set.
-- Keys of per-job and per-tenant data are built from the prefixes in ARGV (this runs on a single Redis, as
-- arq does). Jobs whose record already ended (cancelled while queued) are dropped, never started.
--
-- KEYS: 1 arq queue zset, 2 ready interactive, 3 ready batch, 4 active interactive, 5 active batch,
--       6 virtual time hash, 7 batch heads zset, 8 tenant shares hash
-- ARGV: 1 now_ms, 2 lease_ms, 3 free slots, 4 batch max wait ms, 5 in-progress key prefix,
--       6 running-set key prefix, 7 job record key prefix, 8 arq job key prefix, 9 due read limit,
--       10 batch_free (most batch jobs to start)
-- Returns {{job_id, score, tenant_id, class, ...}, jobs_left_waiting}; class is 'due', 'interactive' or
-- 'batch'.
local now, lease, free = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local inprog_prefix, run_prefix, record_prefix, payload_prefix = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local batch_free = tonumber(ARGV[10])
local started, n, left = {}, 0, 0

local function mark_running(tenant, job_id)
  if tenant and tenant ~= '' then
    redis.call('ZADD', run_prefix .. tenant, now + lease, job_id)
    redis.call('PEXPIRE', run_prefix .. tenant, lease * 2)
  end
end

local function share_of(tenant)
  local raw = redis.call('HGET', KEYS[8], tenant)
  if not raw then return 1, 0 end
  local weight, cap = string.match(raw, '^(%d+) (%d+)$')
  return math.max(1, tonumber(weight) or 1), tonumber(cap) or 0
end

local capped = {}
local function at_cap(tenant, cap)
  if capped[tenant] then return true end
  if cap <= 0 then return false end
  redis.call('ZREMRANGEBYSCORE', run_prefix .. tenant, '-inf', now)
  if redis.call('ZCARD', run_prefix .. tenant) >= cap then
    capped[tenant] = true
    return true
  end
  return false
end

-- 1. Due jobs already in arq's queue, unless their tenant is at its max_running cap, or they are batch jobs
--    and the batch slots are taken (a retried job keeps its class: it is picked as 'batch' or 'due').
local batch_taken = 0
if free > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[9]))
  for i = 1, #due, 2 do
    local job_id = due[i]
    if n >= free then left = 1 break end
    local inprog = inprog_prefix .. job_id
    if redis.call('EXISTS', inprog) == 0 then
      local fields = redis.call('HMGET', record_prefix .. job_id, 'tenant_id', 'priority')
      local tenant, batch = fields[1] or '', fields[2] == 'batch'
      local _, cap = share_of(tenant)
      if (tenant ~= '' and at_cap(tenant, cap)) or (batch and batch_taken >= batch_free) then
        left = 1
      else
        redis.call('PSETEX', inprog, lease, '1')
        redis.call('ZADD', KEYS[1], 'XX', now + lease, job_id)
        mark_running(tenant, job_id)
        started[#started + 1] = job_id
        started[#started + 1] = due[i + 1]
        started[#started + 1] = tenant
        started[#started + 1] = batch and 'batch' or 'due'
        n = n + 1
        if batch then batch_taken = batch_taken + 1 end
      end
    end
  end
end

local function range_of(tenant) return '[' .. tenant .. '|', '(' .. tenant .. '}' end
local function parts(member)  -- tenant, enqueue time (ms), job id of a ready-set member
  local tenant, us, job_id = string.match(member, '^(.*)|(%d+)|(.*)$')
  return tenant, math.floor(tonumber(us) / 1000), job_id
end

-- 2. Aging: overdue batch jobs join the interactive class (a bounded number of tenants per call).
if n < free then
  local cutoff = now - max_wait
  local overdue = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', cutoff, 'LIMIT', 0, 64)
  for _, tenant in ipairs(overdue) do
    local lo, hi = range_of(tenant)
    local members = redis.call('ZRANGEBYLEX', KEYS[3], lo, hi, 'LIMIT', 0, free - n + 1)
    local next_ms = nil
    for _, member in ipairs(members) do
      local _, ms = parts(member)
      if ms <= cutoff then
        redis.call('ZREM', KEYS[3], member)
        redis.call('ZADD', KEYS[2], 0, member)
        redis.call('ZADD', KEYS[4], 'NX', 0, tenant)
      else
        next_ms = ms
        break
      end
    end
    if not next_ms then
      local head = redis.call('ZRANGEBYLEX', KEYS[3], lo, hi, 'LIMIT', 0, 1)
      if #head > 0 then local _, ms = parts(head[1]) next_ms = ms end
    end
    if next_ms then
      redis.call('ZADD', KEYS[7], next_ms, tenant)
    else
      redis.call('ZREM', KEYS[7], tenant)
      redis.call('ZREM', KEYS[5], tenant)
    end
  end
end

-- 3. Stride scheduling per class.
local function pick_class(ready, active, class, heads, limit)
  local skipped, taken = 0, 0
  while n < free and taken < limit do
    local candidates = redis.call('ZRANGE', active, skipped, skipped, 'WITHSCORES')
    if #candidates == 0 then return end
    local tenant, pass = candidates[1], tonumber(candidates[2])
    local lo, hi = range_of(tenant)
    local head = redis.call('ZRANGEBYLEX', ready, lo, hi, 'LIMIT', 0, 2)
    local weight, cap = share_of(tenant)
    if #head == 0 then
      redis.call('ZREM', active, tenant)
      if heads then redis.call('ZREM', heads, tenant) end
    elseif at_cap(tenant, cap) then
      skipped = skipped + 1
    else
      local member = head[1]
      local _, ms, job_id = parts(member)
      redis.call('ZREM', ready, member)
      local vt = tonumber(redis.call('HGET', KEYS[6], class) or '0')
      if pass < vt then pass = vt end
      redis.call('HSET', KEYS[6], class, pass)
      if #head == 2 then
        redis.call('ZADD', active, pass + 1 / weight, tenant)
        if heads then local _, next_ms = parts(head[2]) redis.call('ZADD', heads, next_ms, tenant) end
      else
        redis.call('ZREM', active, tenant)
        if heads then redis.call('ZREM', heads, tenant) end
      end
      local status = redis.call('HGET', record_prefix .. job_id, 'status')
      if status == 'cancelled' or status == 'succeeded' or status == 'failed' then
        redis.call('DEL', payload_prefix .. job_id)
      else
        redis.call('PSETEX', inprog_prefix .. job_id, lease, '1')
        redis.call('ZADD', KEYS[1], now + lease, job_id)
        mark_running(tenant, job_id)
        started[#started + 1] = job_id
        started[#started + 1] = ms
        started[#started + 1] = tenant
        started[#started + 1] = class
        n = n + 1
        taken = taken + 1
      end
    end
  end
end

pick_class(KEYS[2], KEYS[4], 'interactive', nil, free)
pick_class(KEYS[3], KEYS[5], 'batch', KEYS[7], batch_free - batch_taken)
if left == 0 and redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) > 0 then left = 1 end
return {started, left}
