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
-- With `claim` (ARGV 11), each started job is also claimed for its attempt, as arq's run_job and
-- shared/lua/claim.lua would in two more round trips: its payload is read, its attempt is the record's plus
-- one (the record counts every start), and unless the payload is gone ('expired'), a cancel was asked
-- ('aborted') or the attempts are used up ('exhausted'), the record is marked running and the attempt's first
-- event (start, or reset for a retry) is appended. A due job whose record is gone or ended is dropped here.
-- Also with `claim` (and ARGV 18), the ids in arq's abort set are returned, so the worker cancels aborted jobs in
-- the same round trip (arq's own poll reads them with a transaction of its own).
--
-- Commands are spent per poll, not per job, where they can be: the tenants' shares, the virtual time, the
-- active tenants of a class and a tenant's next jobs are read once per call and stride scheduling runs on
-- that copy; the writes to the ready and active sets, arq's queue and the running sets are made once per call
-- (per tenant for the running sets).
--
-- KEYS: 1 arq queue zset, 2 ready interactive, 3 ready batch, 4 active interactive, 5 active batch,
--       6 virtual time hash, 7 batch heads zset, 8 tenant shares hash, 9 arq abort zset
-- ARGV: 1 now_ms, 2 lease_ms, 3 free slots, 4 batch max wait ms, 5 in-progress key prefix,
--       6 running-set key prefix, 7 job record key prefix, 8 arq job key prefix, 9 due read limit,
--       10 batch_free (most batch jobs to start), 11 claim (1/0), 12 event stream key prefix, 13 worker id,
--       14 max tries, 15 event stream maxlen, 16 event stream ttl_s, 17 started_at (seconds, as text),
--       18 read the abort set (1/0: the worker runs no job, so none to cancel)
-- Returns {jobs, jobs_left_waiting, aborts}. Each job is {job_id, score, tenant_id, class}, and with `claim`
-- also {state, payload, attempt, record fields as before the claim (flat name/value list)}; class is 'due',
-- 'interactive' or 'batch'; state is 'run', 'expired', 'aborted' or 'exhausted'.
local now, lease, free = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local inprog_prefix, run_prefix, record_prefix, payload_prefix = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local batch_free = tonumber(ARGV[10])
local claiming = ARGV[11] == '1'
local unpack = unpack or table.unpack  -- Lua 5.1 in Redis, 5.4 in the embedded stand-in
local started, n, left = {}, 0, 0
local queue_adds, run_adds, payload_dels = {}, {}, {}

local function ended(status)
  return status == 'cancelled' or status == 'succeeded' or status == 'failed'
end

-- The record's fields as a table (and, claiming, as the flat list the worker gets).
local function read_record(job_id)
  if not claiming then
    local f = redis.call('HMGET', record_prefix .. job_id, 'tenant_id', 'priority', 'status')
    return {tenant_id = f[1], priority = f[2], status = f[3]}, nil
  end
  local flat = redis.call('HGETALL', record_prefix .. job_id)
  local map = {}
  for i = 1, #flat, 2 do map[flat[i]] = flat[i + 1] end
  return map, flat
end

local shares = {}
local function share_of(tenant)
  local share = shares[tenant]
  if not share then
    share = {1, 0}
    local raw = redis.call('HGET', KEYS[8], tenant)
    if raw then
      local weight, cap = string.match(raw, '^(%d+) (%d+)$')
      share = {math.max(1, tonumber(weight) or 1), tonumber(cap) or 0}
    end
    shares[tenant] = share
  end
  return share[1], share[2]
end

-- Running jobs per capped tenant: read once (lapsed leases pruned), then counted as jobs start here.
local running = {}
local function at_cap(tenant, cap)
  if cap <= 0 then return false end
  if running[tenant] == nil then
    redis.call('ZREMRANGEBYSCORE', run_prefix .. tenant, '-inf', now)
    running[tenant] = redis.call('ZCARD', run_prefix .. tenant)
  end
  return running[tenant] >= cap
end

-- Claims one job (see the header) and adds it to the reply.
local function start(job_id, score, tenant, class, record, flat)
  redis.call('PSETEX', inprog_prefix .. job_id, lease, '1')
  queue_adds[#queue_adds + 1] = now + lease
  queue_adds[#queue_adds + 1] = job_id
  if tenant ~= '' then
    local adds = run_adds[tenant]
    if not adds then adds = {} run_adds[tenant] = adds end
    adds[#adds + 1] = now + lease
    adds[#adds + 1] = job_id
    if running[tenant] ~= nil then running[tenant] = running[tenant] + 1 end
  end
  local job = {job_id, score, tenant, class}
  if claiming then
    local payload = redis.call('GET', payload_prefix .. job_id)
    local attempt = (tonumber(record.attempt) or 0) + 1
    local state = 'run'
    if not payload then state = 'expired'
    elseif record.cancel_requested == '1' then state = 'aborted'
    elseif attempt > tonumber(ARGV[14]) then state = 'exhausted'
    else
      redis.call('HSET', record_prefix .. job_id, 'status', 'running', 'attempt', attempt, 'started_at', ARGV[17],
                 'worker_id', ARGV[13])
      local events = ARGV[12] .. job_id
      local kind = attempt > 1 and 'reset' or 'start'
      local data = '{"attempt":' .. attempt .. '}'
      -- The first start takes the id 0-1 (shared/streams.py FIRST_START_ID), unless the stream has entries.
      if kind ~= 'start' or redis.pcall('XADD', events, 'MAXLEN', '~', ARGV[15], '0-1', 't', kind, 'd', data).err then
        redis.call('XADD', events, 'MAXLEN', '~', ARGV[15], '*', 't', kind, 'd', data)
      end
      redis.call('EXPIRE', events, tonumber(ARGV[16]))
    end
    job = {job_id, score, tenant, class, state, payload or '', attempt, flat}
  end
  started[#started + 1] = job
  n = n + 1
end

-- 1. Due jobs already in arq's queue, unless their tenant is at its max_running cap, or they are batch jobs
--    and the batch slots are taken (a retried job keeps its class: it is picked as 'batch' or 'due').
local batch_taken = 0
local queue_drops = {}
if free > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[9]))
  for i = 1, #due, 2 do
    local job_id = due[i]
    if n >= free then left = 1 break end
    if redis.call('EXISTS', inprog_prefix .. job_id) == 0 then
      local record, flat = read_record(job_id)
      local tenant, batch = record.tenant_id or '', record.priority == 'batch'
      if claiming and (not record.status or ended(record.status)) then
        -- Its record is gone or ended: nothing to run (arq would have run it only to skip it).
        queue_drops[#queue_drops + 1] = job_id
        payload_dels[#payload_dels + 1] = payload_prefix .. job_id
      else
        local _, cap = share_of(tenant)
        if (tenant ~= '' and at_cap(tenant, cap)) or (batch and batch_taken >= batch_free) then
          left = 1
        else
          start(job_id, due[i + 1], tenant, batch and 'batch' or 'due', record, flat)
          if batch then batch_taken = batch_taken + 1 end
        end
      end
    end
  end
end
if #queue_drops > 0 then redis.call('ZREM', KEYS[1], unpack(queue_drops)) end

local function range_of(tenant) return '[' .. tenant .. '|', '(' .. tenant .. '}' end
local function parts(member)  -- tenant, enqueue time (ms), job id of a ready-set member
  local tenant, us, job_id = string.match(member, '^(.*)|(%d+)|(.*)$')
  return tenant, math.floor(tonumber(us) / 1000), job_id
end

-- 2. Aging: overdue batch jobs join the interactive class (a bounded number of tenants per call). No batch
--    tenant is active (the common case), no batch job waits: the batch steps cost one command.
local batch_waiting = redis.call('EXISTS', KEYS[5]) == 1
if batch_waiting and n < free then
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

-- 3. Stride scheduling per class, on a copy of the class's lowest-pass tenants (a page of the active set,
--    read again only when the picks run past its last tenant) and of each tenant's next jobs.
local vt_of, vt_changed = nil, {}
local function virtual_time(class)
  if vt_of == nil then
    local fields = redis.call('HMGET', KEYS[6], 'interactive', 'batch')
    vt_of = {interactive = tonumber(fields[1]) or 0, batch = tonumber(fields[2]) or 0}
  end
  return vt_of[class]
end

-- Byte order, as Redis orders members of equal score (Lua's `<` on strings follows the server's locale,
-- which Redis sets from its environment, and may order names otherwise).
local function name_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function before(a, b)  -- ZRANGE's order: pass, then tenant name
  return a.pass < b.pass or (a.pass == b.pass and a.tenant ~= b.tenant and name_less(a.tenant, b.tenant))
end

-- Takes the next job of candidate `c` (its FIFO copy read on first use): true when one was taken.
local function take(c, class, weight)
  local member = c.heads[c.next]
  c.next = c.next + 1
  local _, ms, job_id = parts(member)
  c.gone[#c.gone + 1] = member
  if c.solo then
    c.taken = (c.taken or 0) + 1  -- its pass is settled at write-back, only if it stays in the class
  else
    local vt = virtual_time(class)
    if c.pass < vt then c.pass = vt end
    vt_of[class] = c.pass
    vt_changed[class] = true
    c.pass = c.pass + 1 / weight
  end
  c.moved = true
  local record, flat = read_record(job_id)
  if ended(record.status) or (claiming and not record.status) then
    payload_dels[#payload_dels + 1] = payload_prefix .. job_id
    return false
  end
  start(job_id, ms, c.tenant, class, record, flat)
  return true
end

-- Reads the next jobs of candidate `c`'s FIFO: at most `room` of them start in this call, and one more says
-- whether others wait (`full`). Jobs it took already leave the ready set first.
local function load_heads(c, ready, room)
  if #c.gone > 0 then
    redis.call('ZREM', ready, unpack(c.gone))
    c.gone = {}
  end
  local lo, hi = range_of(c.tenant)
  c.heads = redis.call('ZRANGEBYLEX', ready, lo, hi, 'LIMIT', 0, room + 1)
  c.next = 1
  c.full = #c.heads == room + 1
end

-- The pass of a class's only active tenant after `taken` picks, as the picks one by one would have left it
-- (and the virtual time with it). When that tenant leaves the class instead, neither is needed: no tenant keeps
-- a pass, and every tenant that joins later is lifted to the same virtual time, whatever its value, so the
-- virtual time is neither read nor written (two commands a poll at one tenant, as in a test or a benchmark).
local function settle_solo(c, class)
  local weight = share_of(c.tenant)
  local pass = math.max(c.pass, virtual_time(class))
  for _ = 2, c.taken do pass = pass + 1 / weight end  -- added one pick at a time: the same rounding
  vt_of[class] = pass
  vt_changed[class] = true
  c.pass = pass + 1 / weight
end

-- Writes a round back: taken jobs leave the ready set, tenants move to their new pass or leave the class.
local function write_back(cands, ready, active, heads, class)
  local gone, passes, next_heads, removed = {}, {}, {}, {}
  for _, c in ipairs(cands) do
    for _, member in ipairs(c.gone) do gone[#gone + 1] = member end
    c.gone = {}
  end
  if #gone > 0 then redis.call('ZREM', ready, unpack(gone)) end
  for _, c in ipairs(cands) do
    if c.removed then
      removed[#removed + 1] = c.tenant
    elseif c.moved then
      if c.solo then settle_solo(c, class) end
      passes[#passes + 1] = c.pass
      passes[#passes + 1] = c.tenant
      if heads then
        if not c.heads or c.next > #c.heads then load_heads(c, ready, 0) end
        if #c.heads > 0 then
          local _, next_ms = parts(c.heads[c.next])
          next_heads[#next_heads + 1] = next_ms
          next_heads[#next_heads + 1] = c.tenant
        end
      end
    end
  end
  if #passes > 0 then redis.call('ZADD', active, unpack(passes)) end
  if #next_heads > 0 then redis.call('ZADD', heads, unpack(next_heads)) end
  if #removed > 0 then
    redis.call('ZREM', active, unpack(removed))
    if heads then redis.call('ZREM', heads, unpack(removed)) end
  end
end

local PAGE = 64
local function pick_class(ready, active, class, heads, limit)
  local taken, capped, ncapped = 0, {}, 0
  while n < free and taken < limit do
    local page_size = math.min(free - n, limit - taken, PAGE) + ncapped + 1
    local page = redis.call('ZRANGE', active, 0, page_size - 1, 'WITHSCORES')
    local cands = {}
    for i = 1, #page, 2 do
      if not capped[page[i]] then
        cands[#cands + 1] = {tenant = page[i], pass = tonumber(page[i + 1]), gone = {}}
      end
    end
    -- The page's last tenant bounds the copy: a tenant past it may come next once every pass here is higher.
    local bound = nil
    if #page == 2 * page_size then bound = {tenant = page[#page - 1], pass = tonumber(page[#page])} end
    if #page == 2 and #cands == 1 then cands[1].solo = true end  -- the class's only active tenant
    local crossed, open = false, false
    local changed = false  -- a job taken or dropped, a tenant out of the class or capped
    while n < free and taken < limit do
      local best = nil
      for _, c in ipairs(cands) do
        if not c.out and (best == nil or before(c, best)) then best = c end
      end
      if best == nil then break end
      if bound ~= nil and before(bound, best) then crossed = true break end
      local weight, cap = share_of(best.tenant)
      if not best.heads then load_heads(best, ready, math.min(free - n, limit - taken)) end
      changed = true
      if best.next > #best.heads then
        best.out, best.removed = true, true  -- its FIFO is empty (cancelled jobs): it leaves the class
      elseif at_cap(best.tenant, cap) then
        best.out = true
        capped[best.tenant] = true
        ncapped = ncapped + 1
      else
        if take(best, class, weight) then taken = taken + 1 end
        if best.next > #best.heads then
          if best.full then best.heads = nil else best.out, best.removed = true, true end
        end
      end
    end
    write_back(cands, ready, active, heads, class)
    for _, c in ipairs(cands) do
      if not c.out then open = true end
    end
    if not crossed and (open or n >= free or taken >= limit) then
      -- Out of slots: jobs may be left in this class.
      if open or bound ~= nil or ncapped > 0 then left = 1 end
      return
    end
    if not crossed and bound == nil then
      -- Every active tenant was seen: none has a job left, or those left are at their cap.
      if ncapped > 0 then left = 1 end
      return
    end
    if crossed and not changed then
      -- A round that changed nothing would repeat itself: never expected (a page starts below its bound), but
      -- a script that does not end blocks Redis, so stop and let the next poll go on.
      left = 1
      return
    end
  end
  -- Out of slots before the class was read: jobs may be left in it.
  if redis.call('EXISTS', active) == 1 then left = 1 end
end

pick_class(KEYS[2], KEYS[4], 'interactive', nil, free)
if batch_waiting then
  pick_class(KEYS[3], KEYS[5], 'batch', KEYS[7], batch_free - batch_taken)
end

-- Writes of the whole call.
if vt_changed.interactive or vt_changed.batch then
  local vts = {}
  for class, _ in pairs(vt_changed) do
    vts[#vts + 1] = class
    vts[#vts + 1] = vt_of[class]
  end
  redis.call('HSET', KEYS[6], unpack(vts))
end
if #queue_adds > 0 then redis.call('ZADD', KEYS[1], unpack(queue_adds)) end
for tenant, adds in pairs(run_adds) do
  redis.call('ZADD', run_prefix .. tenant, unpack(adds))
  redis.call('PEXPIRE', run_prefix .. tenant, lease * 2)
end
if #payload_dels > 0 then redis.call('DEL', unpack(payload_dels)) end
local aborts = {}
if claiming and ARGV[18] == '1' then aborts = redis.call('ZRANGE', KEYS[9], 0, -1) end
return {started, left, aborts}
