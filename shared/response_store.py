"""Stored Responses API responses (`store`, the default), per tenant in Redis for RESPONSE_RETENTION_S: the
parameters a response echoes, its input items as the client sent them, the conversation so far in the internal
model (the expanded `previous_response_id` history and this request's input) and, once it has ended, its
answer. The API writes and reads them; the conversation is provider-neutral, so a chain goes on on any target.

A response is the job `job_id` (`resp_<job id>`); while it runs, its state is the job's. When its job ends,
the worker records the outcome here (`settle_job_response`), so a response outlives its job record
(JOB_TTL_S); the API settles it from the job record too, as a fallback. Knows the Responses statuses, not
the format's JSON."""

import logging
import time
from typing import Any

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.content import ContentPart, TextPart
from shared.jobs import JobOutcome, JobRecord
from shared.keys import PREFIX
from shared.models import Completion, JobStatus, Message, WireFormat
from shared.wire.responses import response_status

__all__ = [
    "ENDED",
    "ResponseStore",
    "StoredResponse",
    "ended_status",
    "job_id_of",
    "response_id_of",
    "response_key",
    "settle_job_response",
]

logger = logging.getLogger(__name__)

RESPONSE_PREFIX = "resp_"
ENDED = frozenset({"completed", "incomplete", "failed", "cancelled"})
"""The statuses of a response whose job has ended: what `StoredResponse.status` is once it is set."""


def response_id_of(job_id: str) -> str:
    return f"{RESPONSE_PREFIX}{job_id}"


def job_id_of(response_id: str) -> str | None:
    """The job behind a response id, or None for an id this gateway never gave."""
    job_id = response_id.removeprefix(RESPONSE_PREFIX)
    return job_id if job_id != response_id and job_id.startswith("job_") else None


def response_key(tenant_id: str, response_id: str) -> str:
    return f"{PREFIX}:response:{tenant_id}:{response_id}"


class StoredResponse(BaseModel):
    """`status` and `completion` are set once the response has ended (`completed`, `incomplete`, `failed`,
    `cancelled`); `error` is the failed job's error as `GatewayError.to_dict` gives it."""

    id: str
    tenant_id: str
    job_id: str
    model: str
    created_at: int = Field(default_factory=lambda: int(time.time()))
    echo: dict[str, Any] = Field(default_factory=dict)
    input_items: list[dict[str, Any]] = Field(default_factory=list)
    system: list[TextPart] = Field(default_factory=list)
    conversation: list[Message] = Field(default_factory=list)
    status: str | None = None
    completion: Completion | None = None
    error: dict[str, Any] | None = None

    def history(self) -> list[Message]:
        """The conversation with this response's answer as the last assistant turn: what a response chained
        to it (`previous_response_id`) continues. Instructions are not carried over, as OpenAI's are not."""
        if self.completion is None:
            return list(self.conversation)
        return [*self.conversation, answer_message(self.completion)]


def answer_message(completion: Completion) -> Message:
    """An answer as an assistant turn: its parts in order (thinking, text, tool calls), or its text."""
    parts: list[ContentPart] = list(completion.parts) or [TextPart(text=completion.content)]
    if completion.refusal and not completion.parts:
        return Message(role="assistant", content=parts if completion.content else [], refusal=completion.refusal)
    return Message(role="assistant", content=parts, refusal=completion.refusal)


def ended_status(status: JobStatus, completion: Completion | None) -> str:
    """The status of a response whose job ended with `status`: an answer is `completed` or `incomplete`
    (cut at its maximum or by a content filter), a cancelled job `cancelled`, any other end `failed`."""
    if status is JobStatus.SUCCEEDED and completion is not None:
        return response_status(completion)[0]
    return "cancelled" if status is JobStatus.CANCELLED else "failed"


async def settle_job_response(redis: Redis, record: JobRecord, outcome: JobOutcome) -> None:
    """The worker's side: once a Responses job has ended, its stored response gets the outcome. A job of
    another format returns at once, without a Redis command; so does one whose response was not stored
    (`store: false`) or was deleted. Best effort: a Redis error is logged, and the API settles the response
    from the job record when it next reads it (within JOB_TTL_S)."""
    if record.wire_format is not WireFormat.RESPONSES:
        return
    key = response_key(record.tenant_id, response_id_of(record.id))
    try:
        raw = await redis.get(key)
        if raw is None:
            return
        stored = StoredResponse.model_validate_json(raw)
        if stored.status not in ENDED:
            ended = _ended(stored, outcome.status, outcome.completion, outcome.error)
            await redis.set(key, ended.model_dump_json(), keepttl=True, xx=True)
    except RedisError as exc:
        logger.warning("response of job %s not settled (%s); the API settles it from the job record",
                       record.id, type(exc).__name__)


class ResponseStore:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def save(self, stored: StoredResponse) -> None:
        await self._redis.set(response_key(stored.tenant_id, stored.id), stored.model_dump_json(), ex=self._ttl_s)

    async def get(self, tenant_id: str, response_id: str) -> StoredResponse | None:
        """Another tenant's response is indistinguishable from a missing one: the key holds the tenant."""
        raw = await self._redis.get(response_key(tenant_id, response_id))
        return StoredResponse.model_validate_json(raw) if raw else None

    async def delete(self, tenant_id: str, response_id: str) -> bool:
        return bool(await self._redis.delete(response_key(tenant_id, response_id)))

    async def settle(self, stored: StoredResponse, job_status: JobStatus, completion: Completion | None,
                     error: dict[str, Any] | None) -> StoredResponse:
        """Record how the response's job ended; the retention runs from its creation, as OpenAI's does. A
        response deleted meanwhile stays deleted (`xx`)."""
        ended = _ended(stored, job_status, completion, error)
        await self._redis.set(response_key(stored.tenant_id, stored.id), ended.model_dump_json(), keepttl=True,
                              xx=True)
        return ended


def _ended(stored: StoredResponse, job_status: JobStatus, completion: Completion | None,
           error: dict[str, Any] | None) -> StoredResponse:
    """The answer only for a succeeded job, the error only for a failed one, as the job record keeps them."""
    return stored.model_copy(update={
        "status": ended_status(job_status, completion),
        "completion": completion if job_status is JobStatus.SUCCEEDED else None,
        "error": error if job_status is JobStatus.FAILED else None,
    })
