"""docs/API.md's compatibility matrix through the official SDKs (issue 13, Must show): every request row of
the Chat Completions and Messages tables, sent by the `openai` / `anthropic` SDK over HTTP to a running API
and worker, to an OpenAI and an Anthropic target of the fake provider, plain and streamed.

Each row's sample is tests/shared/test_compat_matrix.py's (the internal model of a request carrying the
field), written as the client's SDK call by the client format's own renderer: SDK arguments as arguments,
`extra_body` only for what the SDK's `create` does not take, `extra_headers` for `anthropic-beta`. Then:
- a field the target cannot honour (the row says "refused"; a stream adds `n` above 1 and the streamed-only
  rows) is refused with 400 `unsupported_parameter` naming it, in the endpoint's error shape, and the
  upstream is never called;
- otherwise the upstream receives exactly one request, whose JSON body (and `anthropic-beta` header) is what
  the target's renderer makes of the row's sample: the field crossed SDK -> API -> queue -> worker -> SDK
  -> upstream as sent or translated, with nothing added, changed or lost on the way; and the client's SDK
  reads the answer (a plain answer's first choice or content block; a stream to its end).

Every case has a route of its own (upstream model `mx-<case>`), so its record in the fake provider is its
own. Fallback mid-route is in tests/e2e/test_real_clients_sdks.py."""

import inspect
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.resources.messages import AsyncMessages
from openai.resources.chat.completions import AsyncCompletions

from shared.content import ThinkingPart
from shared.fake_provider_reply import sign_thinking
from shared.models import ChatRequest, Message, WireFormat
from shared.wire import anthropic as anthropic_wire
from shared.wire import openai as openai_wire
from shared.wire.capabilities import unsupported_params
from tests.e2e.conftest import ADMIN_KEY, Gateway
from tests.shared.test_compat_matrix import CHAT, MESSAGES, SAMPLES, SOURCES, TABLES
from tests.support.routed_gateway import RoutedGateway, run_routed_gateway

WIRES = {WireFormat.OPENAI: openai_wire, WireFormat.ANTHROPIC: anthropic_wire}
SDK_ARGUMENTS = {
    WireFormat.OPENAI: frozenset(inspect.signature(AsyncCompletions.create).parameters),
    WireFormat.ANTHROPIC: frozenset(inspect.signature(AsyncMessages.create).parameters),
}
MESSAGES_MAX_TOKENS = 256
PROVIDERS = (WireFormat.OPENAI, WireFormat.ANTHROPIC)
STREAMED_ONLY = {row for (_, row), (fields, _) in SAMPLES.items() if fields.get("stream")}
CASES = [(table, row, provider, streamed) for (table, row) in sorted(SAMPLES) for provider in PROVIDERS
         for streamed in (False, True) if streamed or row not in STREAMED_ONLY]


def _case_model(index: int) -> str:
    return f"mx-{index}"


def _routes() -> str:
    lines = ["models:"]
    for index, (_, _, provider, _) in enumerate(CASES):
        base = '"{f}/v1"' if provider is WireFormat.OPENAI else '"{f}"'
        lines += [f"  {_case_model(index)}:",
                  f"    - {{{{provider: {provider.value}, model: {_case_model(index)}, base_url: {base}}}}}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def matrix_gateway(gateway: Gateway) -> Iterator[RoutedGateway]:
    with run_routed_gateway("sdk-matrix", _routes(), gateway) as routed:
        yield routed


@pytest.fixture(scope="module")
async def sdks(matrix_gateway: RoutedGateway, gateway: Gateway) -> AsyncIterator[dict[WireFormat, Any]]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as admin:
        tenant = {"name": f"sdk-matrix-{uuid.uuid4().hex[:8]}", "rate_limit": 100000}  # 370 requests in a minute
        created = await admin.post("/api/v1/admin/tenants", json=tenant, headers={"X-API-Key": ADMIN_KEY})
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    clients: dict[WireFormat, Any] = {
        WireFormat.OPENAI: openai.AsyncOpenAI(base_url=matrix_gateway.openai_url, api_key=key, max_retries=0,
                                              timeout=30),
        WireFormat.ANTHROPIC: anthropic.AsyncAnthropic(base_url=matrix_gateway.base_url, api_key=key,
                                                       max_retries=0, timeout=30),
    }
    yield clients
    for client in clients.values():
        await client.close()


def _signed(message: Message) -> Message:
    """Thinking blocks signed as the fake provider signs its own: it refuses any other signature, as Anthropic."""
    if isinstance(message.content, str):
        return message
    parts = [part.model_copy(update={"signature": sign_thinking(part.text)})
             if isinstance(part, ThinkingPart) and part.signature else part for part in message.content]
    return message.model_copy(update={"content": parts})


def _request(table: str, row: str, streamed: bool, *, bare: bool = False) -> ChatRequest:
    """The row's sample as its client sends it (`bare`: without the row's fields): a Messages request always
    has `max_tokens`."""
    fields = {} if bare else SAMPLES[table, row][0]
    values = {"messages": [{"role": "user", "content": "hi"}], **fields, "stream": streamed}
    request = ChatRequest.model_validate({"model": "public", "source": SOURCES[table], **values})
    update: dict[str, Any] = {"messages": [_signed(message) for message in request.messages]}
    if request.source is WireFormat.ANTHROPIC and request.max_tokens is None:
        update["max_tokens"] = MESSAGES_MAX_TOKENS
    return request.model_copy(update=update)


def _sdk_call(request: ChatRequest, model: str) -> dict[str, Any]:
    """The row's request as its client writes the SDK call: what the SDK takes as an argument is one."""
    source = request.source
    kw: dict[str, Any] = WIRES[source].render_request(request.model_copy(update={"stream": False}), model)
    extra: dict[str, Any] = kw.pop("extra_body", {})
    kw.update({key: extra.pop(key) for key in list(extra) if key in SDK_ARGUMENTS[source]})
    if extra:
        kw["extra_body"] = extra
    if request.stream:
        kw["stream"] = True
        if source is WireFormat.OPENAI and request.include_usage:
            kw["stream_options"] = {"include_usage": True}
    return kw


def _body(kw: dict[str, Any]) -> dict[str, Any]:
    """The JSON body an SDK sends for `create(**kw)`."""
    body = {key: value for key, value in kw.items() if key not in ("extra_body", "extra_headers")}
    return {**body, **kw.get("extra_body", {})}


async def _send(sdk: Any, source: WireFormat, kw: dict[str, Any]) -> None:
    """Calls the SDK and reads the answer as a client would: a stream to its end."""
    create = sdk.chat.completions.create if source is WireFormat.OPENAI else sdk.messages.create
    answer = await create(**kw)
    if not kw.get("stream"):
        assert answer.choices[0].message if source is WireFormat.OPENAI else answer.content, answer
        return
    events = [event async for event in answer]
    if source is WireFormat.OPENAI:
        assert any(chunk.choices and chunk.choices[0].finish_reason for chunk in events), events
    else:
        assert events[-1].type == "message_stop", events


def _expect_cell(table: str, row: str, provider: WireFormat, refused: dict[str, str], streamed: bool) -> None:
    """The in-process verdict the run is checked against is the documented one (a stream may add refusals)."""
    cell = TABLES[table][row][PROVIDERS.index(provider)]
    if not streamed or row in STREAMED_ONLY:
        assert cell.startswith("refused") == bool(refused), f"{row} to {provider.value}: {cell} vs {refused}"


@pytest.mark.parametrize(("table", "row", "provider", "streamed"), CASES,
                         ids=[f"{'chat' if t == CHAT else 'messages'}-{r}-to-{p.value}-{'stream' if s else 'plain'}"
                              for t, r, p, s in CASES])
async def test_matrix_row_through_the_official_sdk(
    sdks: dict[WireFormat, Any], matrix_gateway: RoutedGateway, table: str, row: str, provider: WireFormat,
    streamed: bool,
) -> None:
    assert table in (CHAT, MESSAGES)
    model = _case_model(CASES.index((table, row, provider, streamed)))
    request = _request(table, row, streamed)
    refused = unsupported_params(request, provider, model)
    _expect_cell(table, row, provider, refused, streamed)
    kw = _sdk_call(request, model)
    if refused:
        with pytest.raises((openai.BadRequestError, anthropic.BadRequestError)) as caught:
            await _send(sdks[request.source], request.source, kw)
        error = caught.value.response.json()
        detail = error["error"]
        assert detail["code"] == "unsupported_parameter", error
        assert detail["message"].startswith(f"'{next(iter(refused))}' cannot be honoured"), error
        if request.source is WireFormat.ANTHROPIC:
            assert error["type"] == "error" and detail["type"] == "invalid_request_error", error
        assert matrix_gateway.upstream_requests(model) == []
        return
    if set(SAMPLES[table, row][0]) - {"stream"}:  # the row's field is in the client's call: not a plain request
        assert kw != _sdk_call(_request(table, row, streamed, bare=True), model)
    await _send(sdks[request.source], request.source, kw)
    received = matrix_gateway.upstream_requests(model)
    assert len(received) == 1, received
    expected = WIRES[provider].render_request(request, model)
    assert received[0]["body"] == _body(expected)
    if provider is request.source:  # "forwarded": the upstream gets the client's body, only `stream_options` added
        upstream = {**received[0]["body"]}
        if streamed and provider is WireFormat.OPENAI:
            assert upstream.pop("stream_options")["include_usage"] is True  # the gateway bills from the usage
        assert upstream == {key: value for key, value in _body(kw).items() if key != "stream_options"}
    beta = expected.get("extra_headers", {}).get("anthropic-beta")
    if beta is not None:
        assert set(beta.split(",")) <= set(received[0]["headers"]["anthropic-beta"].split(","))
