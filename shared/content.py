"""The parts a conversation is made of, in the gateway's own vocabulary: what a message carries (text, images,
documents, audio, tool calls and results, reasoning) and what a request offers the model (tools, tool choice,
output format, reasoning settings). Wire modules translate each provider's shapes to and from these, once.

The shape follows Anthropic's content blocks, the richer of the two: a message is a list of parts in order.
An OpenAI `role: "tool"` message is a `ToolResultPart` in a user message (consecutive tool messages share
one), and an assistant's `tool_calls` are `ToolCallPart`s after its text; rendering back to OpenAI splits them
out again, so a conversation round-trips through either format unchanged.

`cache_control` (Anthropic's prompt-cache marker, e.g. `{"type": "ephemeral", "ttl": "1h"}`) is kept verbatim
on every part that can carry it. Base64 payloads (`data`) are kept as the client's string: validated once
when parsed (the wire module checks the alphabet cheaply, never decodes), never copied or re-encoded."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AudioPart",
    "CacheControl",
    "ContentPart",
    "DocumentPart",
    "ImagePart",
    "OutputFormat",
    "RawPart",
    "Reasoning",
    "TextPart",
    "ThinkingPart",
    "Tool",
    "ToolCallPart",
    "ToolChoice",
    "ToolResultContent",
    "ToolResultPart",
]

CacheControl = dict[str, Any]
"""Anthropic's `cache_control` object, verbatim (`type`, optional `ttl` "5m" or "1h")."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True)


class TextPart(_Part):
    type: Literal["text"] = "text"
    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None
    """Anthropic citations on an answer's or a history's text block, verbatim (same-provider only)."""


class ImagePart(_Part):
    """An image by URL (`url`) or inline (`data`, base64 without the `data:` prefix, with `media_type`)."""

    type: Literal["image"] = "image"
    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: Literal["auto", "low", "high"] | None = None
    """OpenAI's resolution hint; Anthropic has none (a target that cannot honour it is an unsupported one)."""
    cache_control: CacheControl | None = None


class DocumentPart(_Part):
    """A document (PDF, or plain text): inline base64 `data` with `media_type`, a `url`, plain `text`, or a
    provider file id (`file_id`, OpenAI Files / Anthropic Files API: same-provider only)."""

    type: Literal["document"] = "document"
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    text: str | None = None
    file_id: str | None = None
    filename: str | None = None
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: CacheControl | None = None


class AudioPart(_Part):
    """OpenAI `input_audio`: base64 `data` in `format` ("wav", "mp3"). Anthropic takes no audio."""

    type: Literal["audio"] = "audio"
    data: str
    format: str


class ToolCallPart(_Part):
    """A call the assistant made. `arguments` is the JSON text as the model wrote it (OpenAI's form); an
    Anthropic `tool_use.input` object is serialised once, compactly, when parsed."""

    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: str
    cache_control: CacheControl | None = None


ToolResultContent = Annotated[TextPart | ImagePart | DocumentPart, Field(discriminator="type")]


class ToolResultPart(_Part):
    """The result of one tool call, sent back in a user turn (an OpenAI `role: "tool"` message)."""

    type: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    content: list[ToolResultContent] = Field(default_factory=list)
    is_error: bool = False
    cache_control: CacheControl | None = None


class ThinkingPart(_Part):
    """Reasoning the model showed: Anthropic `thinking` (text with its `signature`) or `redacted_thinking`
    (`redacted` holds its opaque `data`). Carried verbatim back to the provider that made it, which checks the
    signature; `provider` says which one that was."""

    type: Literal["thinking"] = "thinking"
    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    provider: str | None = None


class RawPart(_Part):
    """A provider's own content block the model has no shape for (Anthropic `server_tool_use`,
    `web_search_tool_result`, `search_result`, `container_upload`, an image or document by Files-API id, a
    tool result holding such blocks, ...), kept verbatim in `block` for a provider of the `source` format
    (the only one that can read it). Any other target cannot honour it: `shared.wire.capabilities` names it."""

    type: Literal["raw"] = "raw"
    source: str
    """The wire format the block belongs to (a `shared.models.WireFormat` value)."""
    block: dict[str, Any]


ContentPart = Annotated[
    TextPart | ImagePart | DocumentPart | AudioPart | ToolCallPart | ToolResultPart | ThinkingPart | RawPart,
    Field(discriminator="type"),
]


class Tool(BaseModel):
    """A tool offered to the model. `kind` "function" is a client-side function (both providers); any other
    kind is a provider's own tool (Anthropic `web_search_20250305`, `bash_20250124`, ...) kept verbatim in
    `raw`, which only that provider can serve."""

    model_config = ConfigDict(frozen=True)

    kind: str = "function"
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """JSON Schema of the arguments (OpenAI `parameters`, Anthropic `input_schema`)."""
    strict: bool | None = None
    cache_control: CacheControl | None = None
    raw: dict[str, Any] | None = None


class ToolChoice(BaseModel):
    """`mode`: "auto", "none", "required" (OpenAI "required", Anthropic "any") or "tool" (`name` forced)."""

    model_config = ConfigDict(frozen=True)

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


class OutputFormat(BaseModel):
    """What the answer's text must be: `json_object` (any JSON object) or `json_schema` (`json_schema`, with
    `name` and `strict` as OpenAI takes them). Plain text is the absence of an OutputFormat."""

    model_config = ConfigDict(frozen=True)

    type: Literal["json_object", "json_schema"]
    name: str | None = None
    json_schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class Reasoning(BaseModel):
    """How much the model should think. OpenAI `reasoning_effort` is `effort`; Anthropic `thinking` is `mode`
    ("enabled" with `budget_tokens`, "adaptive", "disabled") and `output_config.effort` is `effort` too."""

    model_config = ConfigDict(frozen=True)

    effort: str | None = None
    mode: Literal["enabled", "adaptive", "disabled"] | None = None
    budget_tokens: int | None = Field(default=None, ge=1)
