"""The one guarantee of everything after admission: what admission took (a concurrency slot, tokens, a budget
reservation) and the response-cache leadership claimed with it are given back on any way out, an exception
(of any step, present or future), a cancelled request or an early return (joining an identical request),
unless the job was created, which then owns them: its end, or its cancellation, settles them.

`api.submit` runs every step from admission to the job's creation inside `hold_admission`; admission itself
registers what it took the moment Redis granted it (`AdmissionHold.take`), before anything else can fail.
A request with no cache lead to claim is admitted and its job created by one script
(shared/lua/admit_create.lua): it takes nothing the job does not own at once, so its hold stays empty."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError

from api.shards import ShardHandles
from shared.keys import job_key
from shared.limits import Admission, queue_settlement

logger = logging.getLogger(__name__)


@dataclass
class AdmissionHold:
    """What one request holds between admission and its job's creation, and whether the job now owns it."""

    job_id: str
    admission: Admission | None = None
    cache_digest: str | None = None  # the in-flight marker this request may have claimed as leader
    handed_over: bool = False

    def take(self, admission: Admission) -> None:
        self.admission = admission

    def lead(self, digest: str) -> None:
        """Called before claiming the marker: a claim whose reply was lost is still cleared."""
        self.cache_digest = digest

    def hand_over(self) -> None:
        """The job exists: from now on its end settles the admission and clears the marker."""
        self.handed_over = True


@asynccontextmanager
async def hold_admission(shard: ShardHandles, job_id: str) -> AsyncIterator[AdmissionHold]:
    hold = AdmissionHold(job_id)
    try:
        yield hold
    finally:
        if not hold.handed_over and (hold.admission is not None or hold.cache_digest is not None):
            # Shielded: a client that disconnects (cancelling this task) must not cancel the give-back too.
            await asyncio.shield(give_back(shard, hold))


async def give_back(shard: ShardHandles, hold: AdmissionHold) -> None:
    """Release the admission and the cache marker, unless the job record exists (a create whose reply was
    lost): then the job holds them, and releasing here too would free a budget reservation twice. A Redis
    failure here is logged, not raised, so the request's own error is the one the client sees; the slot then
    expires on its own (REQUEST_TIMEOUT_S + WORKER_JOB_TIMEOUT_S)."""
    try:
        if await shard.redis.exists(job_key(hold.job_id)):
            return
        if hold.admission is not None:
            await release_admission(shard, hold.admission, hold.job_id)
        if hold.cache_digest is not None:
            await shard.cache.release(hold.cache_digest, hold.job_id)
    except RedisError as exc:
        logger.warning("could not give back the admission of %s: %s", hold.job_id, type(exc).__name__)


async def release_admission(shard: ShardHandles, admission: Admission, job_id: str) -> None:
    """Settle an admission as if its job used nothing: slot freed, tokens and reservation returned."""
    async with shard.redis.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, admission, job_id, tokens_used=0, cost_usd=0.0, now=datetime.now(UTC))
        await pipe.execute()
