"""Per-job Redis Stream: the worker appends events, the API reads them (from the start, or resuming after an
entry id) and waits for the terminal one. Stream entry ids double as SSE event ids. Knows event kinds, not
wire formats.

An answer's output is one entry per run of one kind of output (several provider deltas coalesced): `token`
(text), `thinking`, `tool_call` (pieces of one call) and `refusal`. Each entry's data is the compact form
`delta_from_event` turns back into a `Delta`, so a reader renders any kind without knowing how it was cut."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import job_events_key
from shared.models import Delta, ToolCallDelta

__all__ = ["FIRST_START_ID", "OUTPUT_KINDS", "Event", "EventKind", "add_event", "append_event", "delta_from_event",
           "encode_data", "read_events"]

BLOCK_MS = 5000
# A job's first start event has this id, the smallest a stream entry can have (the claim scripts give it unless
# the stream already has entries), so a reader that wants only the outcome (api/relay.py `wait_for_result`)
# reads after it and wakes once, on the outcome, not first on the start (issue 17). Every other entry's id is
# Redis's own (milliseconds-sequence), so the order of a job's events is unchanged.
FIRST_START_ID = "0-1"


class EventKind(StrEnum):
    START = "start"
    RESET = "reset"  # a retried attempt begins: readers drop the partial text of the earlier one
    TOKEN = "token"  # {"text": ..., "logprobs"?: {...}}
    THINKING = "thinking"  # {"text": ..., "signature"?: ...} or {"redacted": data}
    TOOL_CALL = "tool_call"  # {"index": 0, "id"?: ..., "name"?: ..., "arguments": "..."}
    REFUSAL = "refusal"  # {"text": ..., "logprobs"?: {...}}
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (EventKind.DONE, EventKind.ERROR, EventKind.CANCELLED)

    @property
    def is_output(self) -> bool:
        return self in OUTPUT_KINDS


OUTPUT_KINDS = frozenset({EventKind.TOKEN, EventKind.THINKING, EventKind.TOOL_CALL, EventKind.REFUSAL})


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
    redis: Redis, job_id: str, kind: EventKind, data: dict[str, object], *, maxlen: int, ttl_s: int | None
) -> None:
    """Append one event; with `ttl_s` None the stream keeps the TTL it has (set when the job was claimed), and
    the append is one XADD."""
    if ttl_s is None:
        await redis.xadd(job_events_key(job_id), {"t": kind.value, "d": encode_data(data)}, maxlen=maxlen,
                         approximate=True)
        return
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


def delta_from_event(kind: EventKind, data: dict[str, object]) -> Delta:
    """The delta an output entry (or a cached answer's structured chunk) stands for; an empty delta for any
    other kind. Tolerant of missing fields: the data was written by our own worker."""
    if kind is EventKind.TOKEN:
        return Delta(text=_text(data, "text"), logprobs=_mapping(data.get("logprobs")))
    if kind is EventKind.THINKING:
        redacted = data.get("redacted")
        if isinstance(redacted, str):
            return Delta(redacted_thinking=redacted)
        signature = data.get("signature")
        return Delta(thinking=_text(data, "text"), signature=signature if isinstance(signature, str) else None)
    if kind is EventKind.TOOL_CALL:
        index, call_id, name = data.get("index"), data.get("id"), data.get("name")
        return Delta(tool_call=ToolCallDelta(index=index if isinstance(index, int) else 0,
                                             id=call_id if isinstance(call_id, str) else None,
                                             name=name if isinstance(name, str) else None,
                                             arguments=_text(data, "arguments")))
    if kind is EventKind.REFUSAL:
        return Delta(refusal=_text(data, "text"), logprobs=_mapping(data.get("logprobs")))
    return Delta()


def _text(data: dict[str, object], name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> dict[str, object] | None:
    return value if isinstance(value, dict) else None
