"""Paging through a tenant's jobs, newest first, for `GET /api/v1/jobs` (split from api/routes/jobs.py).

The tenant's job index (a sorted set scored by created_at) outlives some of its records: records expire
`JOB_TTL_S` after they end, one at a time. So a page walks the index from the cursor, skips the members whose
record is gone and removes them from the index as it goes. A status filter is applied while walking, so a
page is full whenever enough matches exist; the walk is bounded (`MAX_SCAN` index entries per page), and
only when that bound is reached may a page come back short, with `has_more` and a cursor that resumes the
walk where it stopped. The cursor is opaque to clients: the (score, id) of the last entry it covers."""

import asyncio
import base64
import binascii
import json
import math
import re
from dataclasses import dataclass

from api.deps import AppState
from api.shards import ShardHandles
from shared.errors import InvalidRequest
from shared.jobs import JobRecord
from shared.keys import job_key, tenant_jobs_key
from shared.models import JobStatus

__all__ = ["MAX_SCAN", "Page", "decode_cursor", "encode_cursor", "list_page"]

BATCH = 200
MAX_SCAN = 2000
CURSOR_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

Position = tuple[float, str]


@dataclass(frozen=True)
class Page:
    records: list[JobRecord]
    next_cursor: str | None


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> Position:
    """The position a `next_cursor` names; 400 for anything else, including a forged score that is not a
    finite number (NaN reached Redis as a bad range: a 503) or an id that no job has."""
    try:
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        score, job_id = value
        if isinstance(score, bool) or not isinstance(score, int | float) or not isinstance(job_id, str):
            raise ValueError("bad cursor")
        if not math.isfinite(float(score)) or not CURSOR_JOB_ID.fullmatch(job_id):
            raise ValueError("bad cursor")
        return float(score), job_id
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidRequest("'cursor' is not a cursor returned by this endpoint (next_cursor)") from exc


async def list_page(state: AppState, shard: ShardHandles, tenant_id: str, status: JobStatus | None, limit: int,
                    cursor: Position | None) -> Page:
    matches, last, exhausted = await _walk(state, shard, tenant_id, status, limit, cursor)
    next_cursor: str | None
    if len(matches) > limit:
        matches, next_cursor = matches[:limit], encode_cursor(matches[limit - 1])
    else:
        next_cursor = None if exhausted or last is None else encode_cursor(last)
    records = await asyncio.gather(*(shard.store.get(job_id) for _, job_id in matches))
    return Page([record for record in records if record is not None], next_cursor)


async def _walk(state: AppState, shard: ShardHandles, tenant_id: str, status: JobStatus | None, limit: int,
                cursor: Position | None) -> tuple[list[Position], Position | None, bool]:
    """Up to `limit + 1` matching entries after `cursor`, the last entry examined, and whether the index ended."""
    index = tenant_jobs_key(tenant_id)
    matches: list[Position] = []
    last = cursor
    scanned = 0
    while scanned < MAX_SCAN:
        top: float | str = "+inf" if last is None else last[0]
        batch = await shard.redis.zrevrangebyscore(index, top, "-inf", start=0, num=BATCH, withscores=True)
        entries = [(float(score), member.decode()) for member, score in batch]
        # Entries sharing the cursor's score come in descending id order; those not below it were seen.
        fresh = [e for e in entries if last is None or e[0] < last[0] or e[1] < last[1]]
        if not fresh:
            return matches, last, True
        statuses = await _statuses(state, shard, [job_id for _, job_id in fresh])
        expired = []
        for entry, found in zip(fresh, statuses, strict=True):
            scanned += 1
            last = entry
            if found is None:
                expired.append(entry[1])
            elif status is None or found == status.value:
                matches.append(entry)
                if len(matches) > limit:
                    break
        if expired:
            await shard.redis.zrem(index, *expired)
        if len(matches) > limit:
            return matches, last, False
        if len(batch) < BATCH:
            return matches, last, True
    return matches, last, False


async def _statuses(state: AppState, shard: ShardHandles, job_ids: list[str]) -> list[str | None]:
    async with shard.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(job_key(job_id), "status")
        replies = await pipe.execute()
    return [reply.decode() if reply is not None else None for reply in replies]
