"""Dead-lettered webhook deliveries, for the admin API: listing them and sending them again.

worker/webhooks.py moves a delivery to the `gw:webhooks:dead` stream when the receiver refused it for good
(a 4xx) or every attempt failed. After the receiver is fixed, an operator lists the stream and redelivers
entries: each goes back on the delivery schedule as a first attempt, due now, and leaves the stream in the
same script (shared/lua/webhook_redeliver.lua), so it is neither lost nor sent twice by a double replay."""

import re
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.errors import InvalidRequest
from shared.keys import WEBHOOK_DEAD_STREAM, WEBHOOK_RETRY_KEY
from shared.redis import decode_hash
from shared.scripts import LuaScript, lua_source
from shared.webhooks import Delivery

__all__ = ["MAX_REDELIVER", "DeadLetter", "DeadPage", "list_dead", "redeliver"]

REDELIVER = LuaScript(lua_source("webhook_redeliver.lua"))
MAX_REDELIVER = 1000
# ASCII digits (`\d` also matches Arabic-Indic ones, `$` a trailing newline), each part within 64 bits.
_ENTRY_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class DeadLetter:
    id: str  # the stream entry's id: what `redeliver` takes
    job_id: str
    url: str
    attempts: int
    reason: str  # `rejected` (a permanent 4xx/3xx, or a refused target) or `exhausted` (every attempt failed)
    detail: str
    at: float  # when it was dead-lettered (unix seconds)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "job_id": self.job_id, "url": self.url, "attempts": self.attempts,
                "reason": self.reason, "detail": self.detail, "dead_lettered_at": self.at}


@dataclass(frozen=True)
class DeadPage:
    entries: list[DeadLetter]
    next_cursor: str | None  # the id to pass as `before` for the next (older) page


def entry_id(raw: str) -> str:
    """A stream entry id (`<ms>-<seq>`), or InvalidRequest."""
    match = _ENTRY_ID.fullmatch(raw)
    if match is None or any(int(part) > UINT64_MAX for part in match.groups()):
        raise InvalidRequest(f"{raw[:40]!r} is not a dead-letter entry id (like '1764300000000-0')")
    return raw


async def list_dead(redis: Redis, *, limit: int, before: str | None = None) -> DeadPage:
    """Dead letters newest first, `limit` of them, older than the entry `before` (exclusive) if given."""
    top = f"({entry_id(before)}" if before is not None else "+"
    raw = await redis.xrevrange(WEBHOOK_DEAD_STREAM, max=top, min="-", count=limit + 1)
    entries = [_dead_letter(_text(ident), decode_hash(fields)) for ident, fields in raw[:limit]]
    return DeadPage(entries, entries[-1].id if len(raw) > limit else None)


async def redeliver(redis: Redis, ids: list[str]) -> tuple[list[str], list[str]]:
    """Schedule these dead letters again, as first attempts due now: (ids redelivered, ids not in the stream,
    e.g. redelivered already or trimmed)."""
    wanted = list(dict.fromkeys(entry_id(ident) for ident in ids))
    async with redis.pipeline(transaction=False) as pipe:
        for ident in wanted:
            pipe.xrange(WEBHOOK_DEAD_STREAM, min=ident, max=ident)
        found = await pipe.execute()
    args: list[object] = [int(time.time() * 1000)]
    for ident, rows in zip(wanted, found, strict=True):
        if rows:
            letter = _dead_letter(ident, decode_hash(rows[0][1]))
            args += [ident, Delivery(job_id=letter.job_id, url=letter.url, attempt=1).member()]
    if len(args) == 1:
        return [], wanted
    reply = await REDELIVER.run(redis, [WEBHOOK_DEAD_STREAM, WEBHOOK_RETRY_KEY], args)
    if not isinstance(reply, list):
        raise RuntimeError(f"webhook_redeliver.lua answered {reply!r}")
    moved = {_text(ident) for ident in reply}
    return [ident for ident in wanted if ident in moved], [ident for ident in wanted if ident not in moved]


def _dead_letter(ident: str, fields: dict[str, str]) -> DeadLetter:
    return DeadLetter(id=ident, job_id=fields.get("job_id", ""), url=fields.get("url", ""),
                      attempts=int(fields.get("attempts", "0") or 0), reason=fields.get("reason", ""),
                      detail=fields.get("detail", ""), at=float(fields.get("at", "0") or 0))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
