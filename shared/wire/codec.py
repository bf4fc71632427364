"""The client-facing side of each wire format as one typed object, `WireCodec`: what the API needs to read a
request and answer it (JSON, SSE or error) in the format the client spoke. Routes and the API's error
handler pick a codec by `WireFormat` (`codec_for`) instead of passing wire modules around or guessing the
format from a URL or a module name. The provider-facing side (`render_request`, `parse_completion`) stays
with the worker's adapters, which import their wire module directly."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from shared.errors import GatewayError
from shared.models import ChatRequest, Completion, Delta, WireFormat
from shared.wire import anthropic, openai, responses
from shared.wire._common import SSEEvent

__all__ = ["ANTHROPIC_CODEC", "OPENAI_CODEC", "RESPONSES_CODEC", "StreamRenderer", "WireCodec", "codec_for"]


class StreamRenderer(Protocol):
    """One stream's answer as SSE events, in one wire format; stateful, so one per stream."""

    def start(self, prompt_tokens: int = 0) -> list[SSEEvent]: ...
    def delta(self, delta: Delta) -> list[SSEEvent]: ...
    def finish(self, completion: Completion) -> list[SSEEvent]: ...
    def error(self, error: GatewayError) -> list[SSEEvent]: ...


class WireCodec(Protocol):
    """Reads a client's request and renders every kind of answer to it in one wire format."""

    @property
    def format(self) -> WireFormat: ...

    @property
    def id_prefix(self) -> str: ...

    def parse_request(self, body: Mapping[str, object], headers: Mapping[str, str]) -> ChatRequest: ...
    def render_completion(self, completion: Completion) -> dict[str, object]: ...
    def render_error(self, error: GatewayError) -> dict[str, object]: ...
    def stream_renderer(self, completion_id: str, model: str, created: int,
                        include_usage: bool) -> StreamRenderer: ...


@dataclass(frozen=True)
class _OpenAICodec:
    format: WireFormat = WireFormat.OPENAI
    id_prefix: str = "chatcmpl-"

    def parse_request(self, body: Mapping[str, object], headers: Mapping[str, str]) -> ChatRequest:
        return openai.parse_request(body, headers)

    def render_completion(self, completion: Completion) -> dict[str, object]:
        return openai.render_completion(completion)

    def render_error(self, error: GatewayError) -> dict[str, object]:
        return openai.render_error(error)

    def stream_renderer(self, completion_id: str, model: str, created: int, include_usage: bool) -> StreamRenderer:
        return openai.StreamRenderer(completion_id, model, created, include_usage)


@dataclass(frozen=True)
class _AnthropicCodec:
    format: WireFormat = WireFormat.ANTHROPIC
    id_prefix: str = "msg_"

    def parse_request(self, body: Mapping[str, object], headers: Mapping[str, str]) -> ChatRequest:
        """`headers` matter here: `anthropic-beta` names betas the request relies on."""
        return anthropic.parse_request(body, headers)

    def render_completion(self, completion: Completion) -> dict[str, object]:
        return anthropic.render_completion(completion)

    def render_error(self, error: GatewayError) -> dict[str, object]:
        return anthropic.render_error(error)

    def stream_renderer(self, completion_id: str, model: str, created: int, include_usage: bool) -> StreamRenderer:
        return anthropic.StreamRenderer(completion_id, model, created, include_usage)


@dataclass(frozen=True)
class _ResponsesCodec:
    """OpenAI's Responses API. Its route (api/routes/openai_responses.py) reads the Responses-only fields with
    `responses.parse_responses_request` and builds its renderer with the response's echo; this codec is what
    the format-blind code paths use: errors (OpenAI's shape) and the job id prefix."""

    format: WireFormat = WireFormat.RESPONSES
    id_prefix: str = "resp_"

    def parse_request(self, body: Mapping[str, object], headers: Mapping[str, str]) -> ChatRequest:
        return responses.parse_request(body, headers)

    def render_completion(self, completion: Completion) -> dict[str, object]:
        shell = responses.ResponseShell(id=completion.id, model=completion.model, created_at=completion.created)
        return responses.render_response(shell, status=responses.response_status(completion)[0],
                                         completion=completion)

    def render_error(self, error: GatewayError) -> dict[str, object]:
        return responses.render_error(error)

    def stream_renderer(self, completion_id: str, model: str, created: int, include_usage: bool) -> StreamRenderer:
        return responses.ResponsesStreamRenderer(responses.ResponseShell(id=completion_id, model=model,
                                                                         created_at=created))


OPENAI_CODEC: WireCodec = _OpenAICodec()
ANTHROPIC_CODEC: WireCodec = _AnthropicCodec()
RESPONSES_CODEC: WireCodec = _ResponsesCodec()
_CODECS: Mapping[WireFormat, WireCodec] = {WireFormat.OPENAI: OPENAI_CODEC, WireFormat.ANTHROPIC: ANTHROPIC_CODEC,
                                           WireFormat.RESPONSES: RESPONSES_CODEC}


def codec_for(wire_format: WireFormat) -> WireCodec:
    return _CODECS[wire_format]
