"""Jobs of the non-chat kinds through `run_completion` (worker/endpoint_jobs.py): the usage record and the
metrics carry the job's endpoint; a streamed legacy completion's pieces are coalesced per choice as a chat
stream's are (FLUSH_INTERVAL_S / FLUSH_MAX_CHARS), and falls back only before its first appended output."""

import json
from collections.abc import AsyncGenerator

import pytest
from prometheus_client import REGISTRY

from shared.config import Settings
from shared.endpoint import EmbeddingOutput, Endpoint, TextChoice, TextCompletionOutput
from shared.endpoint_requests import EmbeddingRequest, JobRequest, TextCompletionRequest
from shared.errors import UpstreamUnavailable
from shared.jobs import JobStore
from shared.keys import USAGE_STREAM, job_events_key
from shared.metrics import metric_labels
from shared.models import ChatRequest, Completion, Delta, Usage, WireFormat
from shared.pricing import load_price_table
from shared.routing_table import RoutingTable, Target
from tests.factories import make_fake_redis
from worker.breaker import CircuitBreaker
from worker.deps import WorkerDeps
from worker.jobs import run_completion
from worker.routing import RetryPolicy, Router

Piece = tuple[int, str]  # (choice index, text)


def _target(model: str, endpoint: Endpoint) -> Target:
    return Target(provider="openai", model=model, base_url=f"http://{model}.invalid/v1",  # type: ignore[arg-type]
                  endpoints=frozenset({endpoint}))


class EndpointProvider:
    """An OpenAI-like provider with embeddings and text completions; `script[model]` is what each call of
    that model does, in turn: an exception to raise, or the chunks to stream (each a list of pieces), an
    exception among them failing the stream there."""

    name = "openai"

    def __init__(self, script: dict[str, list[object]]) -> None:
        self.script = script
        self.calls: list[str] = []

    async def complete(self, request: ChatRequest, target: Target, *, drop: frozenset[str] = frozenset()) -> Completion:
        raise AssertionError("no chat here")

    async def stream(self, request: ChatRequest, target: Target, *,
                     drop: frozenset[str] = frozenset()) -> AsyncGenerator[Delta, None]:
        raise AssertionError("no chat here")
        yield Delta()

    async def embed(self, request: EmbeddingRequest, target: Target) -> Completion:
        self._next(target)
        return Completion(id="e", model=target.model, provider=self.name, content="",
                          usage=Usage(prompt_tokens=4), output=EmbeddingOutput(embeddings=[[0.5, 0.5]]))

    async def complete_text(self, request: TextCompletionRequest, target: Target) -> Completion:
        raise AssertionError("streamed only here")

    async def stream_text(self, request: TextCompletionRequest, target: Target) -> AsyncGenerator[Completion, None]:
        chunks = self._next(target)
        assert isinstance(chunks, list)
        for chunk in chunks:
            if isinstance(chunk, Exception):
                raise chunk
            choices = [TextChoice(index=index, text=text) for index, text in chunk]
            yield Completion(id="c", model=target.model, provider=self.name, content="",
                             output=TextCompletionOutput(choices=choices))
        yield Completion(id="c", model=target.model, provider=self.name, content="",
                         usage=Usage(prompt_tokens=3, completion_tokens=7),
                         output=TextCompletionOutput(choices=[TextChoice(index=0, text="", finish_reason="stop")]))

    async def aclose(self) -> None:
        return None

    def _next(self, target: Target) -> object:
        self.calls.append(target.model)
        outcome = self.script[target.model].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _deps(provider: EndpointProvider, routes: dict[str, list[Target]]) -> WorkerDeps:
    redis = make_fake_redis()
    settings = Settings(_env_file=None, redis_url="redis://unused:6379")  # type: ignore[call-arg]
    table, prices = RoutingTable(routes, use_defaults=False), load_price_table(settings)
    breaker = CircuitBreaker(redis, failure_threshold=100, open_s=1)
    return WorkerDeps(settings=settings, redis=redis, store=JobStore(redis, ttl_s=600, events_maxlen=1000),
                      routing_table=table, router=Router({"openai": provider}, breaker, RetryPolicy(1, 0.0, 0.0)),
                      prices=prices, worker_id="worker-test", metric_labels=metric_labels(table, prices.models()))


async def _run(deps: WorkerDeps, request: JobRequest, job_id: str = "job_1") -> str:
    await deps.store.create(job_id, "ten_ep", request, WireFormat.OPENAI)
    return await run_completion({"deps": deps, "job_try": 1, "job_id": job_id}, job_id)


async def _token_events(deps: WorkerDeps, job_id: str = "job_1") -> list[dict[str, object]]:
    entries = await deps.redis.xrange(job_events_key(job_id))
    events = [(fields[b"t"].decode(), json.loads(fields[b"d"])) for _, fields in entries]
    return [data for kind, data in events if kind == "token"]


async def _usage_rows(deps: WorkerDeps) -> list[dict[str, object]]:
    return [json.loads(fields[b"row"]) for _, fields in await deps.redis.xrange(USAGE_STREAM)]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_endpoint_job_usage_row_and_metrics_carry_the_endpoint() -> None:
    provider = EndpointProvider({"text-embedding-3-small": [None]})
    deps = _deps(provider, {"emb": [_target("text-embedding-3-small", Endpoint.EMBEDDINGS)]})
    labels = {"tenant": "ten_ep", "model": "emb", "endpoint": "embeddings"}
    jobs, tokens = (_sample("llm_gateway_jobs_total", provider="openai", status="succeeded", **labels),
                    _sample("llm_gateway_tokens_total", direction="in", **labels))
    cost = _sample("llm_gateway_cost_usd_total", tenant="ten_ep", endpoint="embeddings")
    assert await _run(deps, EmbeddingRequest(model="emb", input="four tokens of text")) == "succeeded"
    rows = await _usage_rows(deps)
    assert [(row["endpoint"], row["prompt_tokens"]) for row in rows] == [("embeddings", 4)]
    assert _sample("llm_gateway_jobs_total", provider="openai", status="succeeded", **labels) == jobs + 1
    assert _sample("llm_gateway_tokens_total", direction="in", **labels) == tokens + 4
    assert _sample("llm_gateway_cost_usd_total", tenant="ten_ep", endpoint="embeddings") > cost


async def test_text_completion_stream_coalesces_pieces_per_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    # A timer that never fires: only the first output goes out at once, the rest when the stream ends.
    monkeypatch.setattr("worker.text_completion_job.FLUSH_INTERVAL_S", 3600.0)
    chunks = [[(0, "Hel")], [(1, "Wor")], [(0, "lo"), (1, "ld")], [(0, " there")], [(1, "!")]]
    provider = EndpointProvider({"gpt-3.5-turbo-instruct": [chunks]})
    deps = _deps(provider, {"inst": [_target("gpt-3.5-turbo-instruct", Endpoint.COMPLETIONS)]})
    assert await _run(deps, TextCompletionRequest(model="inst", prompt="p", n=2, stream=True)) == "succeeded"
    # After the first flush, choice 1 spoke first: each choice's event in the order choices first spoke.
    assert await _token_events(deps) == [{"text": "Hel", "index": 0}, {"text": "World!", "index": 1},
                                         {"text": "lo there", "index": 0}]
    record = await deps.store.get("job_1")
    assert record is not None and record.result is not None
    output = record.result.output
    assert isinstance(output, TextCompletionOutput)
    assert [choice.text for choice in output.choices] == ["Hello there", "World!"]


async def test_text_completion_stream_flushes_at_max_chars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.text_completion_job.FLUSH_INTERVAL_S", 3600.0)
    monkeypatch.setattr("worker.text_completion_job.FLUSH_MAX_CHARS", 4)
    chunks = [[(0, "a")], [(0, "bb")], [(0, "cc")], [(0, "d")]]
    provider = EndpointProvider({"gpt-3.5-turbo-instruct": [chunks]})
    deps = _deps(provider, {"inst": [_target("gpt-3.5-turbo-instruct", Endpoint.COMPLETIONS)]})
    assert await _run(deps, TextCompletionRequest(model="inst", prompt="p", stream=True)) == "succeeded"
    assert [event["text"] for event in await _token_events(deps)] == ["a", "bbcc", "d"]


async def test_text_completion_stream_falls_back_when_it_fails_before_any_output() -> None:
    provider = EndpointProvider({"first": [[UpstreamUnavailable("down")]],
                                 "gpt-3.5-turbo-instruct": [[[(0, "fine")]]]})
    deps = _deps(provider, {"inst": [_target("first", Endpoint.COMPLETIONS),
                                     _target("gpt-3.5-turbo-instruct", Endpoint.COMPLETIONS)]})
    assert await _run(deps, TextCompletionRequest(model="inst", prompt="p", stream=True)) == "succeeded"
    assert provider.calls == ["first", "gpt-3.5-turbo-instruct"]
    assert await _token_events(deps) == [{"text": "fine", "index": 0}]
    assert (await _usage_rows(deps))[0]["fallback_used"] is True


async def test_text_completion_stream_fails_without_fallback_after_output() -> None:
    provider = EndpointProvider({"first": [[[(0, "partial")], UpstreamUnavailable("cut")]],
                                 "gpt-3.5-turbo-instruct": [[[(0, "never")]]]})
    deps = _deps(provider, {"inst": [_target("first", Endpoint.COMPLETIONS),
                                     _target("gpt-3.5-turbo-instruct", Endpoint.COMPLETIONS)]})
    assert await _run(deps, TextCompletionRequest(model="inst", prompt="p", stream=True)) == "failed"
    assert provider.calls == ["first"]
    record = await deps.store.get("job_1")
    assert record is not None and record.error is not None and record.error["code"] == "stream_interrupted"
    assert [row["endpoint"] for row in await _usage_rows(deps)] == ["completions"]
