"""Job leases: how a dead worker's jobs come back in seconds, not minutes.

arq marks a started job with an in-progress key that lives `job_timeout + 10` s, and `on_job_start` pushes the
job's queue score into the future so other workers' scans skip it. With a 900 s job timeout a SIGKILLed
worker's job stayed invisible for ~15 minutes. Instead both live only `WORKER_LEASE_S` here, and the live
worker renews them for its running jobs every third of a lease. If the worker dies, renewal stops and the
job is visible to the other workers (which retry it, counting towards `WORKER_MAX_TRIES`) within one lease.

A renewal never revives a job that was handed back or finished: the in-progress key is extended only if it
still exists, and the score only while it is still in the future (a hand-back sets it to now). The job's
entry in its tenant's running set (shared/fair_queue.py, the max_running cap) is renewed with it, so a dead
worker's jobs stop counting against their tenant's cap within one lease."""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

logger = logging.getLogger(__name__)

__all__ = ["RENEW_FRACTION", "LeaseKeeper", "lease_score"]

RENEW_FRACTION = 3  # renew every lease/3: two renewals may be late before a lease lapses

# KEYS: queue, then per job its in-progress key and its tenant's running set (the in-progress key again when
# the tenant is unknown); ARGV: now_ms, lease_ms, then the job ids in KEYS order.
_RENEW = """
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local renewed = 0
for i = 2, #KEYS, 2 do
  local job_id = ARGV[math.floor(i / 2) + 2]
  if redis.call('pexpire', KEYS[i], lease) == 1 then
    renewed = renewed + 1
    local score = redis.call('zscore', KEYS[1], job_id)
    if score and tonumber(score) > now then
      redis.call('zadd', KEYS[1], 'XX', now + lease, job_id)
    end
    if KEYS[i + 1] ~= KEYS[i] then
      redis.call('zadd', KEYS[i + 1], now + lease, job_id)
      redis.call('pexpire', KEYS[i + 1], lease * 2)
    end
  end
end
return renewed
"""


def lease_score(lease_s: float) -> int:
    """The queue score of a job that runs now: one lease ahead, so other workers' scans skip it."""
    return int(time.time() * 1000 + lease_s * 1000)


class LeaseKeeper:
    """Renews the in-progress key and queue score of every job `running_jobs()` names, until stopped."""

    def __init__(self, redis: Redis, queue_name: str, lease_s: float,
                 running_jobs: Callable[[], Iterable[str]],
                 running_key: Callable[[str], str | None] | None = None) -> None:
        self._redis = redis
        self._queue_name = queue_name
        self._lease_ms = int(lease_s * 1000)
        self._interval_s = lease_s / RENEW_FRACTION
        self._running_jobs = running_jobs
        self._running_key = running_key or (lambda _: None)
        self._script = redis.register_script(_RENEW)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def renew_once(self) -> int:
        job_ids = list(self._running_jobs())
        if not job_ids:
            return 0
        keys = [self._queue_name]
        for job_id in job_ids:
            in_progress = in_progress_key_prefix + job_id
            keys += [in_progress, self._running_key(job_id) or in_progress]
        renewed = await self._script(keys=keys, args=[int(time.time() * 1000), self._lease_ms, *job_ids])
        return int(renewed)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.renew_once()
            except Exception as exc:  # Redis down: the next round retries; the jobs may be retried elsewhere
                logger.warning("job lease renewal failed: %s", type(exc).__name__)
