"""The one internal request/response model. Wire modules translate to and from it; routing, jobs and
providers only ever see these types, so a request in one wire format can be served by any provider.

The parts of a conversation (images, documents, tools, tool calls and results, reasoning) live in
`shared.content`. What a format has and the model does not (a field added by a provider last week, an
Anthropic `context_management`) is kept verbatim in `ChatRequest.extra`, tagged with the format it came in
(`ChatRequest.source`): it reaches a provider of that format unchanged, and any other provider only if the
operator or client allowed dropping it (`shared.wire.capabilities`)."""

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from shared.content import (
    ContentPart,
    OutputFormat,
    Reasoning,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
)
from shared.endpoint import EndpointOutput

__all__ = [
    "ChatRequest",
    "Completion",
    "Delta",
    "FinishReason",
    "JobStatus",
    "Message",
    "Role",
    "ToolCallDelta",
    "Usage",
    "WireFormat",
]

Role = Literal["user", "assistant", "system", "developer"]
"""`system`/`developer` turns are messages where the client put them: leading ones become a provider's
system prompt where it takes one (Anthropic's `system`), later ones stay in place (mid-conversation system)."""


class FinishReason(StrEnum):
    """Why generation stopped, in the gateway's own vocabulary (mapped per wire format)."""

    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    TOOL_CALLS = "tool_calls"
    STOP_SEQUENCE = "stop_sequence"
    """A stop sequence matched (`Completion.stop_sequence` says which when the provider said): OpenAI `stop`."""
    REFUSAL = "refusal"
    """The model refused (Anthropic `refusal`); OpenAI clients see `stop` with the message's `refusal` set."""
    PAUSE_TURN = "pause_turn"
    """Anthropic paused a long server-tool turn; the client continues it. OpenAI clients see `stop`."""


class WireFormat(StrEnum):
    """The client-facing API flavour a request came in; decides how results and errors are rendered."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def _as_parts(value: object) -> object:
    """A plain string is one text part (what most messages are), so callers may pass either."""
    return [TextPart(text=value)] if isinstance(value, str) else value


class Message(BaseModel):
    """One conversation turn: its parts in order. `refusal` is an OpenAI assistant turn's refusal text."""

    role: Role
    content: list[ContentPart] = Field(default_factory=list)
    name: str | None = None
    refusal: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, value: object) -> object:
        return _as_parts(value)

    @property
    def text(self) -> str:
        """The text parts joined: what plain-text code paths (estimates, the fake provider) read."""
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


class ChatRequest(BaseModel):
    """A provider-neutral chat request. `model` is the public model name the client asked for.

    `system` is a system prompt given outside the messages (Anthropic's `system`); system turns an OpenAI
    client sends stay in `messages` with their role. Every field a client can set is here or in `extra`:
    nothing is dropped on the way in."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: list[TextPart] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] = Field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    # tools and output
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    output_format: OutputFormat | None = None
    reasoning: Reasoning | None = None
    # sampling
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    top_k: int | None = None
    n: int | None = None
    # attribution, service and caching
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    store: bool | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # what the gateway does not model, verbatim, and where it came from
    source: WireFormat = WireFormat.OPENAI
    extra: dict[str, Any] = Field(default_factory=dict)
    """Body fields of the `source` format the model has no place for, verbatim (forwarded to that format)."""
    betas: list[str] = Field(default_factory=list)
    """`anthropic-beta` header values the client sent (forwarded to Anthropic targets)."""

    @field_validator("system", mode="before")
    @classmethod
    def _system_parts(cls, value: object) -> object:
        return [] if value is None else _as_parts(value)

    @property
    def system_text(self) -> str:
        return "".join(part.text for part in self.system)

    def prompt_chars(self) -> int:
        """Characters of text in the whole prompt (system, messages, tools), for estimates: inline images and
        documents are counted by the wire-independent estimate in `api.admission`, not here."""
        chars = len(self.system_text) + sum(len(message.text) for message in self.messages)
        return chars + sum(len(tool.name) + len(tool.description or "") for tool in self.tools)


class Usage(BaseModel):
    """Token counts of one answer. `prompt_tokens` is the whole input, including what was read from or
    written to the provider's prompt cache: `cached_prompt_tokens` read (billed at the cached-input price),
    `cache_write_tokens` written with the 5-minute lifetime and `cache_write_1h_tokens` with the hour one
    (billed at their write prices). `reasoning_tokens` are part of `completion_tokens` (billed as output)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(BaseModel):
    """A finished answer, with who actually served it (after any fallback).

    `content` is the answer's text; `parts` its output blocks in order when it has more than text (thinking,
    tool calls, text between them), empty for a plain-text answer. `extra` holds the response fields the model
    has no place for, verbatim, as the `extra_format` provider sent them: rendered back only to a client of
    that format."""

    id: str
    model: str
    provider: str
    content: str
    finish_reason: FinishReason = FinishReason.STOP
    usage: Usage = Field(default_factory=Usage)
    created: int = 0
    parts: list[ContentPart] = Field(default_factory=list)
    refusal: str | None = None
    stop_sequence: str | None = None
    logprobs: dict[str, Any] | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    extra_format: WireFormat | None = None
    dropped_params: list[str] = Field(default_factory=list)
    """Request parameters the serving target could not honour and the operator or client allowed dropping."""
    output: EndpointOutput | None = None
    """The answer of a non-chat job (embeddings, legacy completions); None for a chat answer."""

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [part for part in self.parts if isinstance(part, ToolCallPart)]

    @property
    def thinking(self) -> list[ThinkingPart]:
        return [part for part in self.parts if isinstance(part, ThinkingPart)]


class ToolCallDelta(BaseModel):
    """A piece of the `index`-th tool call of an answer: its `id` and `name` on the first piece, then
    fragments of its JSON `arguments`."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Delta(BaseModel):
    """One streamed increment. Each carries one kind of output: `text`, `thinking` (with the block's
    `signature` on its last piece, or `redacted_thinking` data), `refusal` text, or a `tool_call` piece; the
    last delta carries the finish reason (and stop sequence) and/or usage. A renderer opens a new output block
    whenever the kind (or the tool call's index) changes."""

    text: str = ""
    thinking: str = ""
    signature: str | None = None
    redacted_thinking: str | None = None
    refusal: str = ""
    tool_call: ToolCallDelta | None = None
    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    logprobs: dict[str, Any] | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    """OpenAI's answer-level fields, which every chunk repeats: carried on the final delta."""
