"""Shared builders for unit tests."""

from collections.abc import AsyncGenerator

import fakeredis
from arq.connections import ArqRedis

from shared.models import ChatRequest, Completion, Delta, FinishReason, Message, Usage
from shared.redis import deserialize_job, serialize_job
from shared.routing_table import Target


def make_chat_request(model: str = "m", *, stream: bool = False, text: str = "hello") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=text)], stream=stream)


def make_fake_redis() -> ArqRedis:
    """An in-process Redis for unit tests only; integration tests use the real server."""
    fake = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    return ArqRedis(pool_or_conn=fake.connection_pool, job_serializer=serialize_job,
                    job_deserializer=deserialize_job)


def target(provider: str, model: str) -> Target:
    return Target(provider=provider, model=model, base_url="http://upstream.invalid")  # type: ignore[arg-type]


class ScriptedProvider:
    """A provider whose answers per model are scripted: each call pops the next outcome, an exception to
    raise or the text to answer with. `cut_after` makes a stream fail after that many deltas."""

    def __init__(self, name: str, script: dict[str, list[Exception | str]], cut_after: int | None = None,
                 cut_error: Exception | None = None) -> None:
        self.name = name
        self.script = script
        self.calls: list[str] = []
        self.drops: list[frozenset[str]] = []
        self.cut_after = cut_after
        self.cut_error = cut_error

    def _next(self, target: Target) -> str:
        self.calls.append(target.model)
        outcome = self.script[target.model].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def complete(self, request: ChatRequest, target: Target, *, drop: frozenset[str] = frozenset()) -> Completion:
        self.drops.append(drop)
        text = self._next(target)
        return Completion(id="c", model=target.model, provider=self.name, content=text,
                          usage=Usage(prompt_tokens=1, completion_tokens=len(text.split())))

    async def stream(self, request: ChatRequest, target: Target, *,
                     drop: frozenset[str] = frozenset()) -> AsyncGenerator[Delta, None]:
        self.drops.append(drop)
        text = self._next(target)
        for index, word in enumerate(text.split()):
            if self.cut_after is not None and index == self.cut_after and self.cut_error is not None:
                raise self.cut_error
            yield Delta(text=word + " ")
        yield Delta(finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=1, completion_tokens=3))

    async def aclose(self) -> None:
        return None
