"""Per-job Redis Stream: the worker appends events, the API reads them (from the start, or resuming after an
entry id) and waits for the terminal one. Stream entry ids double as SSE event ids. Knows event kinds, not
wire formats."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import job_events_key

__all__ = ["Event", "EventKind", "add_event", "append_event", "encode_data", "read_events"]

BLOCK_MS = 5000


class EventKind(StrEnum):
    START = "start"
    RESET = "reset"  # a retried attempt begins: readers drop the partial text of the earlier one
    TOKEN = "token"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (EventKind.DONE, EventKind.ERROR, EventKind.CANCELLED)


@dataclass(frozen=True)
class Event:
    id: str
    kind: EventKind
    data: dict[str, object]


def add_event(
    pipe: Pipeline | Redis, job_id: str, kind: EventKind, data: dict[str, object], *, maxlen: int, ttl_s: int
) -> None:
    """Queue an XADD (and TTL refresh) on a pipeline, so terminal events commit with the job's state."""
    key = job_events_key(job_id)
    pipe.xadd(key, {"t": kind.value, "d": encode_data(data)}, maxlen=maxlen, approximate=True)
    pipe.expire(key, ttl_s)


def encode_data(data: dict[str, object]) -> str:
    """An event's `d` field; the Lua scripts that append events receive it already encoded."""
    return json.dumps(data, separators=(",", ":"))


async def append_event(
    redis: Redis, job_id: str, kind: EventKind, data: dict[str, object], *, maxlen: int, ttl_s: int
) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        add_event(pipe, job_id, kind, data, maxlen=maxlen, ttl_s=ttl_s)
        await pipe.execute()


async def read_events(
    redis: Redis, job_id: str, *, after_id: str = "0-0", block_ms: int = BLOCK_MS
) -> AsyncIterator[Event | None]:
    """Yield events after `after_id` until a terminal one. Yields None after each empty BLOCK so the caller
    can check deadlines and whether the job died without a terminal event."""
    key = job_events_key(job_id)
    last_id = after_id
    while True:
        reply = await redis.xread({key: last_id}, count=500, block=block_ms)
        if not reply:
            yield None
            continue
        for raw_id, fields in reply[0][1]:
            last_id = raw_id.decode()
            event = _decode(last_id, fields)
            yield event
            if event.kind.is_terminal:
                return


def _decode(entry_id: str, fields: dict[bytes, bytes]) -> Event:
    data = json.loads(fields.get(b"d", b"{}"))
    return Event(id=entry_id, kind=EventKind(fields[b"t"].decode()), data=data if isinstance(data, dict) else {})
