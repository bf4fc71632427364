"""Following a job's events (`GET /api/v1/jobs/{id}/events`): where to resume (`Last-Event-ID` or `after`,
checked before Redis ever sees it) and the SSE items up to the terminal event. Following never cancels the
job: when the stream's REQUEST_TIMEOUT_S is up before the job ends, the last item is a `reconnect` event that
names the id to resume from, and the job runs on (submitted jobs run to their end whoever listens)."""

import json
from collections.abc import AsyncIterator

from redis.exceptions import RedisError

from api.deps import AppState
from api.relay import job_events
from api.shards import ShardHandles
from shared.errors import GatewayError, InvalidRequest, RedisUnavailable, UpstreamTimeout
from shared.jobs import JobRecord
from shared.keys import job_events_key

START = "0-0"
# A stream entry id is two unsigned 64-bit numbers; Redis refuses anything larger as a malformed id.
MAX_ID_PART = 2**64 - 1
ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
HEADER = "Last-Event-ID"
QUERY = "'after'"


def resume_position(last_event_id: str | None, after: str | None) -> tuple[str, str]:
    """The id to resume after and the name of where it came from (the header wins over `?after=`); 400
    naming the header or the parameter when it is not a stream id."""
    if last_event_id:
        return _checked(last_event_id, HEADER), HEADER
    if after is not None:
        return _checked(after, QUERY), QUERY
    return START, HEADER


async def has_more(state: AppState, shard: ShardHandles, record: JobRecord, after_id: str, source: str) -> bool:
    """False when the job has ended and nothing follows `after_id` (the client has seen the end). An id past
    the stream's last entry never came from this stream, and a read after it would wait for nothing: 400."""
    newest = await shard.redis.xrevrange(job_events_key(record.id), count=1)
    last_id = newest[0][0].decode() if newest else START
    if _ordered(after_id) > _ordered(last_id):
        raise InvalidRequest(f"{source} {after_id} is not an event of this job: its last event is {last_id}. "
                             "Omit it to replay the job's events from the start")
    return not (record.status.is_terminal and _ordered(after_id) >= _ordered(last_id))


async def follow_events(state: AppState, shard: ShardHandles, job_id: str,
                        after_id: str) -> AsyncIterator[dict[str, str]]:
    """The job's events after `after_id` as SSE items, ending after the terminal one, or with `reconnect`
    (REQUEST_TIMEOUT_S is up: the job goes on), or with an `error` event the client can resume after."""
    last_id = after_id
    try:
        async for event in job_events(state, shard, job_id, after_id=after_id, cancel_at_deadline=False):
            last_id = event.id
            yield {"id": event.id, "event": event.kind.value, "data": json.dumps(event.data)}
    except UpstreamTimeout:
        yield await _reconnect(state, shard, job_id, last_id)
    except GatewayError as error:
        yield {"event": "error", "data": json.dumps({"error": error.to_dict()})}
    except RedisError:
        # The stream stays resumable: the client reconnects with Last-Event-ID once Redis is back.
        unavailable = RedisUnavailable("Redis became unavailable; reconnect with Last-Event-ID")
        yield {"event": "error", "data": json.dumps({"error": unavailable.to_dict()})}


async def _reconnect(state: AppState, shard: ShardHandles, job_id: str, last_id: str) -> dict[str, str]:
    """The stream's last item when its time is up. Its `id` is the last event's again, so an EventSource
    (which reconnects by itself) and a client that keeps the last id both resume without a gap."""
    try:
        record = await shard.store.get(job_id)
    except RedisError:
        record = None
    data = {"status": record.status.value if record is not None else None, "last_event_id": last_id,
            "message": f"The job has not ended within this stream's {state.settings.request_timeout_s:g} s and "
                       f"goes on; reconnect with Last-Event-ID: {last_id} to follow it"}
    return {"id": last_id, "event": "reconnect", "data": json.dumps(data)}


def _checked(value: str, source: str) -> str:
    left, separator, right = value.partition("-")
    if separator and _is_id_part(left) and _is_id_part(right):
        return value
    raise InvalidRequest(f"{source} must be an event id of this job's stream, like 1700000000000-0 (two whole "
                         "numbers below 2^64, in ASCII digits, joined by '-')")


def _is_id_part(text: str) -> bool:
    # isascii() first: str.isdigit() also accepts other scripts' digits and superscripts, which Redis refuses.
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit() and int(text) <= MAX_ID_PART


def _ordered(entry_id: str) -> tuple[int, int]:
    left, _, right = entry_id.partition("-")
    return int(left), int(right)
