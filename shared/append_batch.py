"""Stream appends of the same event-loop tick go to Redis in one pipeline: a worker streaming many answers at
once sends one round trip per tick for all their output entries, not one per entry (issue 17: tokens appended
in batches per tick). An append waits at most for the current tick's other callbacks, never for a timer, and
one job's entries stay in order (each job awaits its append before the next). Each append gets its own
answer: a failed XADD fails that append only."""

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.keys import job_events_key
from shared.streams import EventKind, encode_data
from shared.tick_batch import TickBatcher

__all__ = ["AppendBatch"]


@dataclass
class _Append:
    job_id: str
    fields: dict[str, str]
    ttl_s: int | None
    future: "asyncio.Future[None]"


class AppendBatch(TickBatcher[_Append]):
    def __init__(self, redis: Redis, maxlen: int) -> None:
        super().__init__()
        self.redis, self.maxlen = redis, maxlen

    async def append(self, job_id: str, kind: EventKind, data: dict[str, object], *, ttl_s: int | None) -> None:
        """Append one event to the job's stream (with `ttl_s`, renew the stream's TTL too)."""
        loop = self.running_loop()
        entry = _Append(job_id, {"t": kind.value, "d": encode_data(data)}, ttl_s, loop.create_future())
        self.add(entry)
        await entry.future

    async def _send(self, batch: list[_Append]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in batch:
                    key = job_events_key(entry.job_id)
                    pipe.xadd(key, entry.fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
                    if entry.ttl_s is not None:
                        pipe.expire(key, entry.ttl_s)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # Redis unreachable: every append of the batch failed with it
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        at = 0
        for entry in batch:
            mine = replies[at:at + (1 if entry.ttl_s is None else 2)]
            at += len(mine)
            if entry.future.done():  # its job was cancelled while waiting
                continue
            error = next((reply for reply in mine if isinstance(reply, Exception)), None)
            if error is not None:
                entry.future.set_exception(error)
            else:
                entry.future.set_result(None)
