"""Stored Responses API responses (`store`, the default), per tenant in Redis for RESPONSE_RETENTION_S: the
parameters a response echoes, its input items as the client sent them, the conversation so far in the internal
model (the expanded `previous_response_id` history and this request's input) and, once it has ended, its
answer. The API writes and reads them; the conversation is provider-neutral, so a chain goes on on any target.

A response is the job `job_id` (`resp_<job id>`); while it runs, its state is the job's. Knows no wire format."""

import time
from typing import Any

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.content import ContentPart, TextPart
from shared.keys import PREFIX
from shared.models import Completion, Message

__all__ = ["ResponseStore", "StoredResponse", "job_id_of", "response_id_of", "response_key"]

RESPONSE_PREFIX = "resp_"


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

    async def settle(self, stored: StoredResponse, status: str, completion: Completion | None,
                     error: dict[str, Any] | None) -> StoredResponse:
        """Record how the response ended; the retention runs from its creation, as OpenAI's does. A response
        deleted meanwhile stays deleted (`xx`)."""
        ended = stored.model_copy(update={"status": status, "completion": completion, "error": error})
        ttl_ms = await self._redis.pttl(response_key(stored.tenant_id, stored.id))
        if ttl_ms > 0:
            await self._redis.set(response_key(stored.tenant_id, stored.id), ended.model_dump_json(), px=ttl_ms,
                                  xx=True)
        return ended
