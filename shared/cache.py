"""Exact-match response cache in Redis. The key hashes the tenant, the API flavour and the whole request
body except a short deny-list of fields that cannot change the answer, so a new parameter is in the key by
default and no answer crosses tenants. Entries keep the streamed chunking so a hit replays it: a text chunk
as its string, any other output (thinking, tool call pieces, refusal, text with logprobs) as the job event it
was (`{"event": "tool_call", "data": {...}}`, see `shared.streams`). A non-streamed answer is replayed from
its completion's parts. A per-key in-flight marker lets identical concurrent misses share one provider call."""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.content import TextPart, ThinkingPart, ToolCallPart
from shared.endpoint import Endpoint
from shared.keys import cache_entry_key, cache_inflight_key
from shared.models import Completion, Delta, ToolCallDelta, WireFormat
from shared.scripts import LuaScript
from shared.streams import EventKind, delta_from_event

__all__ = ["NOT_IN_KEY", "CachedAnswer", "Chunk", "ResponseCache", "cache_digest"]

Chunk = str | dict[str, Any]
"""One streamed piece of a cached answer: text, or a structured output entry `{"event": kind, "data": {...}}`."""

# Fields that change how an answer is delivered or attributed, never what it says.
NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "metadata"})
# Delete the in-flight marker only while it still names the given job (another request may lead by now).
_RELEASE = LuaScript(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


class CachedAnswer(BaseModel):
    completion: Completion
    chunks: list[Chunk]
    cost_usd: float

    def deltas(self) -> list[Delta]:
        """The answer as the deltas a stream replays: its recorded chunks, or, for an answer that was not
        streamed (one text chunk) but has more than text, its completion's parts and refusal."""
        structured = any(not isinstance(chunk, str) for chunk in self.chunks)
        completion = self.completion
        if not structured and (completion.parts or completion.refusal):
            return completion_deltas(completion)
        return [Delta(text=chunk) if isinstance(chunk, str) else _chunk_delta(chunk) for chunk in self.chunks]


def completion_deltas(completion: Completion) -> list[Delta]:
    """A finished answer as deltas, one per output block, in order."""
    deltas: list[Delta] = []
    index = 0
    for part in completion.parts:
        if isinstance(part, TextPart) and part.text:
            deltas.append(Delta(text=part.text))
        elif isinstance(part, ThinkingPart):
            deltas.append(Delta(redacted_thinking=part.redacted) if part.redacted is not None
                          else Delta(thinking=part.text, signature=part.signature))
        elif isinstance(part, ToolCallPart):
            deltas.append(Delta(tool_call=ToolCallDelta(index=index, id=part.id, name=part.name,
                                                        arguments=part.arguments)))
            index += 1
    if not completion.parts and completion.content:
        deltas.append(Delta(text=completion.content))
    if completion.refusal:
        deltas.append(Delta(refusal=completion.refusal))
    return deltas


def _chunk_delta(chunk: dict[str, Any]) -> Delta:
    kind, data = chunk.get("event"), chunk.get("data")
    if kind not in {k.value for k in EventKind} or not isinstance(data, dict):
        return Delta()
    return delta_from_event(EventKind(kind), data)


def cache_digest(tenant_id: str, wire: WireFormat, body: Mapping[str, object],
                 endpoint: Endpoint = Endpoint.CHAT) -> str:
    """The endpoint is part of the key (an embeddings body never meets a completions one); a chat key is
    the same as before endpoints existed, so stored chat answers stay valid across the upgrade."""
    kept = {name: value for name, value in body.items() if name not in NOT_IN_KEY}
    key: list[object] = [tenant_id, wire.value, kept]
    if endpoint is not Endpoint.CHAT:
        key.insert(2, endpoint.value)
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, digest: str) -> CachedAnswer | None:
        raw = await self._redis.get(cache_entry_key(digest))
        return CachedAnswer.model_validate_json(raw) if raw else None

    async def claim(self, digest: str, job_id: str, ttl_s: float) -> str | None:
        """Become the one job computing this answer; returns the job already doing it, or None if we won."""
        key = cache_inflight_key(digest)
        if await self._redis.set(key, job_id, nx=True, px=int(ttl_s * 1000)):
            return None
        leader = await self._redis.get(key)
        return leader.decode() if leader else None

    async def release(self, digest: str, job_id: str) -> None:
        """Give up a leadership whose job was never created, so identical requests do not wait on nothing."""
        await _RELEASE.run(self._redis, [cache_inflight_key(digest)], [job_id])

    async def leader(self, digest: str) -> str | None:
        raw = await self._redis.get(cache_inflight_key(digest))
        return raw.decode() if raw else None


def entry_value(answer: CachedAnswer) -> str:
    return answer.model_dump_json()
