"""Fake LLM provider: a real HTTP (ASGI) server speaking OpenAI Chat Completions and Anthropic Messages,
stream and non-stream, with deterministic replies, latency and failure injection. The gateway's tests and
its demo mode run it instead of the real providers; apart from its fake_provider_* helpers it imports
nothing from the project."""

import asyncio
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.fake_provider_anthropic import AnthropicDialect
from shared.fake_provider_cache import PromptCache
from shared.fake_provider_count import COUNT_TOKENS
from shared.fake_provider_endpoints import EMBEDDINGS, TEXT_COMPLETIONS, FakeEndpoint
from shared.fake_provider_formats import JSON, Dialect, StreamParts, bearer_token
from shared.fake_provider_openai import OpenAIDialect
from shared.fake_provider_recording import Recorder, recorded_requests
from shared.fake_provider_reply import Block, Reply, answer_blocks
from shared.fake_provider_script import (
    Directives,
    count_words,
    parse_directives,
    reply_words,
    retry_headers,
)

__all__ = ["DEFAULT_MODELS", "FakeProviderConfig", "StreamCutError", "create_app", "serve"]

DEFAULT_MODELS = ("fake-gpt", "fake-claude", "gpt-4o-mini", "claude-3-5-haiku-latest")
_MISSING_MODEL = "<missing>"
_CREATED_AT = "2024-01-01T00:00:00Z"

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class FakeProviderConfig:
    """How the fake provider behaves for every request (model-name directives add to this per request)."""

    latency_ms: float = 0
    token_count: int = 12
    inter_token_ms: float = 0
    fail_rate: float = 0.0
    fail_status: int = 503
    fail_models: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    models: tuple[str, ...] = DEFAULT_MODELS

    def __post_init__(self) -> None:
        checks = [
            (self.latency_ms >= 0 and self.inter_token_ms >= 0, "latency_ms and inter_token_ms must be >= 0"),
            (self.token_count >= 0, "token_count must be >= 0"),
            (0.0 <= self.fail_rate <= 1.0, "fail_rate must be within 0..1"),
            (_is_error_status(self.fail_status), "fail_status must be an HTTP error status (400-599)"),
            (all(map(_is_error_status, self.fail_models.values())), "fail_models statuses must be 400-599"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


class StreamCutError(RuntimeError):
    """Raised inside a streaming body on purpose (`cut-after-N`) so the server drops the connection."""


class _QuietStreamCut:
    """Turns an injected stream cut into an unfinished response instead of an application crash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except* StreamCutError:
            # Returning with the body unfinished makes the server close the connection just as a crash
            # would, but it logs one line instead of a traceback for a failure injected on purpose.
            pass


@dataclass(frozen=True)
class _Failure:
    status: int
    message: str
    headers: dict[str, str]


@dataclass
class _StreamProbe:
    """One stream's token frames sent so far; recorded with the time if its client hangs up mid-stream."""

    model: str
    tokens_sent: int = 0


@dataclass
class _ProviderState:
    config: FakeProviderConfig
    rng: random.Random
    requests: Counter[str] = field(default_factory=Counter)
    # Every completion request as received (body and headers), for tests that check what reached upstream.
    recorder: Recorder = field(default_factory=Recorder)
    cache: PromptCache = field(default_factory=PromptCache)
    # Streams whose client closed the connection before the end: how fast a cancel reaches the provider.
    disconnects: deque[JSON] = field(default_factory=lambda: deque(maxlen=1000))

    def stats(self) -> JSON:
        return {"requests": dict(self.requests), "total": sum(self.requests.values())}


def _is_error_status(status: int) -> bool:
    return 400 <= status <= 599


def create_app(config: FakeProviderConfig | None = None) -> Starlette:
    """The ASGI app; its routes are relative, so it can also be mounted under a prefix."""
    settings = config or FakeProviderConfig()
    state = _ProviderState(config=settings, rng=random.Random(settings.seed))
    routes = [
        Route("/v1/chat/completions", _completion_endpoint(state, OpenAIDialect(state.cache)), methods=["POST"]),
        Route("/v1/messages", _completion_endpoint(state, AnthropicDialect(state.cache)), methods=["POST"]),
        Route("/v1/messages/count_tokens", _kind_endpoint(state, COUNT_TOKENS, AnthropicDialect()), methods=["POST"]),
        Route("/v1/embeddings", _kind_endpoint(state, EMBEDDINGS, OpenAIDialect()), methods=["POST"]),
        Route("/v1/completions", _kind_endpoint(state, TEXT_COMPLETIONS, OpenAIDialect()), methods=["POST"]),
        Route("/v1/models", _models_endpoint(state), methods=["GET"]),
        Route("/_stats", _stats_endpoint(state), methods=["GET"]),
        Route("/_reset", _reset_endpoint(state), methods=["POST"]),
        Route("/_disconnects", _disconnects_endpoint(state), methods=["GET"]),
        Route("/_requests", recorded_requests(state.recorder), methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_QuietStreamCut)])


async def serve(host: str, port: int, config: FakeProviderConfig) -> None:
    """Serve the fake provider with uvicorn until signalled or cancelled (both shut it down gracefully)."""
    server = uvicorn.Server(uvicorn.Config(create_app(config), host=host, port=port, lifespan="off"))
    running = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        # Cancelling uvicorn mid-loop would leave its sockets open; ask it to stop and wait instead.
        server.should_exit = True
        await running
        raise


def _completion_endpoint(state: _ProviderState, dialect: Dialect) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await _complete(state, dialect, request)

    return endpoint


def _kind_endpoint(state: _ProviderState, kind: FakeEndpoint, dialect: Dialect) -> Endpoint:
    """A non-chat endpoint (OpenAI's, or Anthropic's token counting), with the chat endpoints' auth,
    recording, directives and failures, in `dialect`'s error shape."""

    async def endpoint(request: Request) -> Response:
        received = await _receive(state, dialect, request)
        if isinstance(received, Response):
            return received
        body, model = received
        if body is None or not isinstance(model, str) or not model:
            return dialect.error(400, "'model' is required.", "model")
        if (problem := kind.problem(body)) is not None:
            return dialect.error(400, *problem)
        directives = parse_directives(model)
        streaming = body.get("stream") is True
        failure = _pick_failure(state, model, directives, streaming)
        await asyncio.sleep((state.config.latency_ms + directives.slow_ms) / 1000)
        if failure is not None:
            return dialect.error(failure.status, failure.message, headers=failure.headers)
        count = state.config.token_count if directives.token_count is None else directives.token_count
        if not streaming:
            return JSONResponse(kind.answer(body, count))
        return StreamingResponse(iter(kind.frames(body, count)), media_type="text/event-stream")

    return endpoint


def _stats_endpoint(state: _ProviderState) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(state.stats())

    return endpoint


def _reset_endpoint(state: _ProviderState) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        state.requests.clear()
        state.disconnects.clear()
        state.recorder.clear()
        state.cache.clear()
        return JSONResponse(state.stats())

    return endpoint


def _disconnects_endpoint(state: _ProviderState) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({"disconnects": list(state.disconnects)})

    return endpoint


def _models_endpoint(state: _ProviderState) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if not (bearer_token(request.headers) or request.headers.get("x-api-key", "").strip()):
            return OpenAIDialect().error(401, "Missing API key.")
        return JSONResponse(_models_page(state.config.models))

    return endpoint


def _models_page(models: tuple[str, ...]) -> JSON:
    # OpenAI's list shape, with Anthropic's fields added so both SDKs' `models.list()` parse it.
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "fake-provider",
            "type": "model",
            "display_name": name,
            "created_at": _CREATED_AT,
        }
        for name in models
    ]
    first, last = (models[0], models[-1]) if models else (None, None)
    return {"object": "list", "data": data, "has_more": False, "first_id": first, "last_id": last}


async def _read_json(request: Request) -> JSON | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _receive(state: _ProviderState, dialect: Dialect, request: Request) -> tuple[JSON | None, object] | Response:
    """Every model endpoint's first steps: the body and its `model`, counted and recorded even when refused;
    or the 401 of a request without a key."""
    body = await _read_json(request)
    model = body.get("model") if body is not None else None
    state.requests[model if isinstance(model, str) and model else _MISSING_MODEL] += 1
    state.recorder.record(request, body, len(await request.body()))
    if not dialect.authorized(request.headers):
        return dialect.error(401, "Missing or empty API key.")
    return body, model


async def _complete(state: _ProviderState, dialect: Dialect, request: Request) -> Response:
    received = await _receive(state, dialect, request)
    if isinstance(received, Response):
        return received
    body, model = received
    if (problem := dialect.problem(body)) is not None or body is None or not isinstance(model, str):
        message, param = problem or ("Invalid request.", None)
        return dialect.error(400, message, param)
    directives = parse_directives(model)
    streaming = body.get("stream") is True
    failure = _pick_failure(state, model, directives, streaming)
    delay_s = (state.config.latency_ms + directives.slow_ms) / 1000
    if failure is not None or not streaming:
        await asyncio.sleep(delay_s)
    if failure is not None:
        return dialect.error(failure.status, failure.message, headers=failure.headers)
    if directives.garbage is not None:
        return _garbage(directives.garbage, streaming)
    reply = _build_reply(state.config, dialect, body, model)
    if reply is None:
        return dialect.error(400, "tool_choice names a tool that is not in 'tools'.", "tool_choice")
    if not streaming:
        return JSONResponse(dialect.completion(reply))
    probe = _StreamProbe(model=model)
    events = _paced(
        dialect.stream(reply, body), delay_s, state.config.inter_token_ms / 1000, directives.cut_after, probe
    )
    return StreamingResponse(_watched(events, request, state, probe), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


async def _watched(events: AsyncIterator[str], request: Request, state: _ProviderState,
                   probe: _StreamProbe) -> AsyncIterator[str]:
    """Relay `events`, recording when the client closes the connection mid-stream. A watcher waits on the
    ASGI receive channel, so the hang-up is seen when it happens, not at the next token's send."""

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            continue
        state.disconnects.append({"model": probe.model, "at": time.time(), "tokens_sent": probe.tokens_sent})

    watcher = asyncio.create_task(watch())
    try:
        async for frame in events:
            yield frame
    finally:
        watcher.cancel()


def _garbage(kind: str, streaming: bool) -> Response:
    """A 200 a broken upstream might send: a body that is not JSON, or JSON that is not a completion."""
    body = "<html>upstream proxy error" if kind == "json" else '{"unexpected": {"shape": true}}'
    if streaming:
        return Response(f"data: {body}\n\n", media_type="text/event-stream")
    return Response(body, media_type="application/json")


def _pick_failure(
    state: _ProviderState, model: str, directives: Directives, streaming: bool
) -> _Failure | None:
    status = _failure_status(state, model, directives, streaming)
    if status is None:
        return None
    message = f"Injected failure: HTTP {status} for model '{model}'."
    return _Failure(status, message, retry_headers(status, directives.retry_after_s))


def _failure_status(state: _ProviderState, model: str, directives: Directives, streaming: bool) -> int | None:
    config = state.config
    if model in config.fail_models:
        return config.fail_models[model]
    if directives.fail_status is not None:
        return directives.fail_status
    # A connection cut has no non-stream equivalent, so a non-stream cut-after is a plain server error.
    if directives.cut_after is not None and not streaming:
        return 500
    if config.fail_rate > 0 and state.rng.random() < config.fail_rate:
        return config.fail_status
    return None


def _build_reply(config: FakeProviderConfig, dialect: Dialect, body: JSON, model: str) -> Reply | None:
    """The answer to `body`: plain words by default; a tool call, JSON, thinking, a refusal or a tool-result
    quote when the request asks for one (shared.fake_provider_inputs documents the triggers)."""
    inputs = dialect.inputs(body)
    if inputs.tool_choice == "named" and inputs.forced_tool not in {tool.name for tool in inputs.tools}:
        return None
    count = parse_directives(model).token_count
    words, truncated = reply_words(
        inputs.user_text, config.token_count if count is None else count, dialect.max_tokens(body)
    )
    blocks, stop = answer_blocks(inputs, words, f"{dialect.call_prefix}{uuid.uuid4().hex[:24]}")
    plain = not inputs.tool_results and inputs.output_schema is None and not inputs.json_object
    finish = _finish(blocks, stop, truncated and plain)
    usage = dialect.usage(body, count_words(dialect.prompt_texts(body)), sum(block.tokens for block in blocks))
    return Reply(id=f"{dialect.id_prefix}{uuid.uuid4().hex[:24]}", model=model, blocks=tuple(blocks),
                 usage=usage, finish=finish, stop_sequence=stop)


def _finish(blocks: list[Block], stop: str | None, truncated: bool) -> str:
    kinds = {block.kind for block in blocks}
    if "tool_use" in kinds:
        return "tool_use"
    if "refusal" in kinds:
        return "refusal"
    if stop is not None:
        return "stop_sequence"
    return "max_tokens" if truncated else "end_turn"


async def _paced(
    parts: StreamParts, first_delay_s: float, gap_s: float, cut_after: int | None, probe: _StreamProbe
) -> AsyncIterator[str]:
    await asyncio.sleep(first_delay_s)
    for frame in parts.head:
        yield frame
    for index, frame in enumerate(parts.tokens):
        if cut_after is not None and index >= cut_after:
            break
        if index and gap_s:
            await asyncio.sleep(gap_s)
        probe.tokens_sent += 1
        yield frame
    if cut_after is not None:
        # Raising after the response has started makes the server close the connection without the
        # terminating chunk, which is what a provider dying mid-stream looks like to a client.
        raise StreamCutError(f"injected stream cut after {cut_after} tokens")
    for frame in parts.tail:
        yield frame
