"""What a target of each wire format can honour, decided from the internal model alone: the gateway never
silently drops a parameter (issue 13). Routing asks `unsupported_params` for every target it may call; a
target that cannot honour a parameter is skipped unless the operator (the route's `drop_params`) or the
client (`x-gateway-drop-params`) allowed dropping it, and the API refuses up front what no target of the
route can honour (`UnsupportedParameter`, 400 `unsupported_parameter`).

Keys are the parameter's name as the request's client knows it (`client_name`), an `extra` field by its own
key, and for a part of the conversation its top-level field (`messages`, `system`, `tools`) with the reason
naming the part. Dropping such a key drops the parts' unsupported pieces, never the field itself.

Calls made here, documented once (docs/API.md has the field-by-field matrix, kept true by
tests/shared/test_compat_matrix.py):
- Same format: only what the provider itself rules out and the gateway can tell before calling it (OpenAI:
  at most 4 stop sequences; Anthropic: `top_p` with `temperature`, whitespace-only stop sequences), and
  what the gateway cannot return (more than one choice, `n` > 1).
- `extra` fields belong to the `source` API: forwarded verbatim to a target of that format, unsupported by
  the other.
- Image `detail` is a resolution hint that changes what the model sees and what it costs: "auto" (the
  provider's own choice) reaches an Anthropic target as Anthropic's only behaviour; "low" and "high" cannot.
- `cache_control` markers reach an OpenAI target as OpenAI's automatic prompt caching (it caches prompt
  prefixes itself; there is no marker to send), so they are never a reason to skip it.
- Thinking parts made by another provider are omitted, not unsupported: their signature can only be checked
  by the provider that made it, and a model cannot use another's reasoning. An OpenAI target takes no
  reasoning input at all. This is the one thing left out without being named, and it changes nothing the
  client asked for: reasoning in history is the model's own scratch space, not instructions.
- `betas` (the `anthropic-beta` header) is not a parameter: it is forwarded to Anthropic targets of an
  Anthropic client, and the features it enables are fields, checked one by one."""

import json
from collections.abc import Iterator
from dataclasses import dataclass

from shared.content import AudioPart, DocumentPart, ImagePart, TextPart, ToolCallPart, ToolResultPart
from shared.errors import UnsupportedParameter
from shared.models import ChatRequest, Message, WireFormat
from shared.routing_table import Target
from shared.wire._common import CLIENT_NAMES, client_name

__all__ = [
    "ANTHROPIC_IMAGE_TYPES",
    "KNOWN_PARAMS",
    "OPENAI_MAX_STOP",
    "SERVICE_TIERS",
    "Plan",
    "drop_allowed",
    "param_label",
    "plan_target",
    "provider_format",
    "refuse_undropped",
    "service_tier_for",
    "unsupported_params",
]

OPENAI_MAX_STOP = 4
ANTHROPIC_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
PDF = "application/pdf"
ANTHROPIC_TEMPERATURE_MAX = 1.0
OPENAI_ONLY_SAMPLING = ("seed", "frequency_penalty", "presence_penalty", "logit_bias", "top_logprobs")
ANTHROPIC_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
"""OpenAI `reasoning_effort` values an Anthropic target can honour: `none` as thinking disabled, the others
as a thinking budget (shared/wire/anthropic_outbound.py's EFFORT_BUDGETS, each at least the minimum)."""
ANTHROPIC_MIN_THINKING = 1024
"""Anthropic's smallest thinking budget; it must be below `max_tokens`."""

SERVICE_TIERS: dict[WireFormat, dict[str, str]] = {
    WireFormat.OPENAI: {"auto": "auto", "default": "default", "standard_only": "default"},
    WireFormat.ANTHROPIC: {"auto": "auto", "standard_only": "standard_only", "default": "standard_only"},
}
"""A request's `service_tier` value (either API's) -> the value a target of each format is sent. OpenAI's
`flex`, `scale`, `priority` and `fast` have no Anthropic equivalent; same-format values are sent as given."""

_MODEL_FIELDS = tuple(name for name in ChatRequest.model_fields if name not in ("source", "extra", "betas"))
KNOWN_PARAMS = frozenset(
    {client_name(name, source) for name in _MODEL_FIELDS for source in WireFormat}
    | {"stop", "user", "metadata", "system"}
)
"""Every parameter name the gateway models, in both APIs' vocabulary: the closed set a metric label may
take (`param_label`); any other name (an `extra` field) is labelled `other`."""


PROVIDER_FORMATS = (WireFormat.OPENAI, WireFormat.ANTHROPIC)
"""The formats providers speak; a client format such as RESPONSES is never a target's."""


def provider_format(provider_name: str) -> WireFormat:
    """The wire format a provider adapter speaks: its name ("openai", "anthropic") is the format's."""
    formats = {f.value: f for f in PROVIDER_FORMATS}
    if provider_name not in formats:
        raise ValueError(f"unknown provider {provider_name!r}: expected one of {', '.join(formats)}")
    return formats[provider_name]


def service_tier_for(value: str, provider: WireFormat, source: WireFormat) -> str | None:
    """The `service_tier` a target of `provider` is sent, or None when it has no equivalent."""
    if provider is source:
        return value
    return SERVICE_TIERS[provider].get(value)


def param_label(param: str) -> str:
    """A parameter name as a metric label value: from a closed set, never free-form client input."""
    return param if param in KNOWN_PARAMS else "other"


def drop_allowed(param: str, allowed: frozenset[str] | set[str], source: WireFormat) -> bool:
    """Whether `param` (a key of `unsupported_params`) may be dropped: `*` allows all; a name matches in the
    client's vocabulary, the internal model's or the other API's (a routes file serves clients of both), so
    `stop_sequences` and `stop` allow the same thing."""
    if "*" in allowed or param in allowed:
        return True
    internal = {name for name, shown in CLIENT_NAMES[source].items() if shown == param}
    internal |= {param} if param in ChatRequest.model_fields else set()
    aliases = internal | {client_name(name, other) for name in internal for other in WireFormat}
    return bool(aliases & allowed)


def unsupported_params(request: ChatRequest, provider: WireFormat, model: str) -> dict[str, str]:
    """Every parameter of `request` a target speaking `provider`'s format cannot honour -> why.

    `model` is the target's model. No model-specific limit is applied: a model's own limits (a model without
    reasoning, without vision) are the provider's answer, `upstream_rejected`, named by the provider."""
    found: dict[str, str] = {}
    checks = _to_anthropic(request) if provider is WireFormat.ANTHROPIC else _to_openai(request)
    for field, reason in (*checks, *_extra(request, provider)):
        found.setdefault(field, reason)
    parts = list(_message_parts(request, provider))
    if parts:
        found["messages"] = _joined(parts)
    return found


def refuse_undropped(request: ChatRequest, provider: WireFormat, model: str, drop: frozenset[str]) -> None:
    """The wire modules' safety net (`render_request`): anything `provider` cannot honour that was not
    allowed to be dropped is refused here, so no render path can send a request without it silently."""
    for param, reason in unsupported_params(request, provider, model).items():
        if param not in drop:
            raise UnsupportedParameter(param, reason)


def _name(request: ChatRequest, field: str) -> str:
    return client_name(field, request.source)


def _to_openai(request: ChatRequest) -> Iterator[tuple[str, str]]:
    if len(request.stop) > OPENAI_MAX_STOP:
        given = len(request.stop)
        yield _name(request, "stop"), f"OpenAI takes at most {OPENAI_MAX_STOP} stop sequences ({given} given)"
    if request.n is not None and request.n > 1 and (request.stream or request.source is not WireFormat.OPENAI):
        # A whole answer carries every choice (the others verbatim for an OpenAI client); a stream relays one.
        yield "n", "a streamed answer (and an Anthropic client) gets one choice only"
    if request.top_k is not None:
        yield "top_k", "OpenAI has no top-k sampling"
    if request.service_tier is not None and service_tier_for(request.service_tier, WireFormat.OPENAI,
                                                             request.source) is None:
        yield "service_tier", f"OpenAI has no service tier {request.service_tier!r}"
    for index, tool in enumerate(request.tools):
        if tool.kind != "function" and request.source is not WireFormat.OPENAI:
            yield "tools", f"tools[{index}] is an Anthropic tool ({tool.kind}) that only Anthropic runs"
    for index, part in enumerate(request.system):
        if part.citations:
            yield "system", f"system[{index}] has citations, which OpenAI messages cannot carry"


def _to_anthropic(request: ChatRequest) -> Iterator[tuple[str, str]]:
    yield from _sampling_to_anthropic(request)
    output = request.output_format
    if output is not None and (output.type == "json_object" or output.json_schema is None):
        yield _name(request, "output_format"), "Anthropic structured outputs need a JSON schema (JSON mode " \
                                               "without one has no equivalent)"
    if request.source is not WireFormat.ANTHROPIC:
        yield from _effort_to_anthropic(request)
    yield from _service_to_anthropic(request)
    for index, tool in enumerate(request.tools):
        if tool.kind != "function" and request.source is not WireFormat.ANTHROPIC:
            yield "tools", f"tools[{index}] is an OpenAI {tool.kind} tool, which Anthropic does not have"
        elif tool.kind != "function" and request.stream:
            yield "tools", (f"tools[{index}] is a server tool: its result blocks are not relayed in a stream by this "
                            "gateway yet (send the request without `stream`)")
    if request.stream and any(isinstance(part, DocumentPart) and part.citations
                              for message in request.messages for part in message.content):
        yield "messages", ("documents with citations: citation deltas are not relayed in a stream by this gateway "
                           "yet (send the request without `stream`)")


def _sampling_to_anthropic(request: ChatRequest) -> Iterator[tuple[str, str]]:
    for field in OPENAI_ONLY_SAMPLING:
        if getattr(request, field) is not None:
            yield field, "Anthropic has no such sampling parameter"
    if request.logprobs:
        yield "logprobs", "Anthropic does not return log probabilities"
    if request.n is not None and request.n > 1:
        yield "n", "Anthropic returns one answer per request"
    if request.temperature is not None and request.temperature > ANTHROPIC_TEMPERATURE_MAX:
        yield _name(request, "temperature"), "Anthropic takes a temperature from 0 to 1"
    if request.source is WireFormat.ANTHROPIC:
        return  # an Anthropic client's own sampling goes as sent: Anthropic answers for what it refuses
    if request.temperature is not None and request.top_p is not None:
        yield "top_p", "current Claude models refuse top_p together with temperature"
    if any(not stop.strip() for stop in request.stop):
        yield _name(request, "stop"), "Anthropic refuses stop sequences made only of whitespace"


def _effort_to_anthropic(request: ChatRequest) -> Iterator[tuple[str, str]]:
    effort = request.reasoning.effort if request.reasoning is not None else None
    if effort is None or effort == "none":
        return
    if effort not in ANTHROPIC_EFFORTS:
        yield _name(request, "reasoning"), f"effort {effort!r} has no Anthropic thinking budget"
    elif request.max_tokens is not None and request.max_tokens <= ANTHROPIC_MIN_THINKING:
        yield _name(request, "reasoning"), (f"max_tokens {request.max_tokens} leaves no room for Anthropic's "
                                            f"minimum thinking budget of {ANTHROPIC_MIN_THINKING} tokens")


def _service_to_anthropic(request: ChatRequest) -> Iterator[tuple[str, str]]:
    if request.store:
        yield "store", "Anthropic does not store completions"
    if request.prompt_cache_key is not None:
        yield "prompt_cache_key", "Anthropic caches by cache_control markers, not by a key"
    if request.metadata:
        yield "metadata", f"Anthropic metadata takes only a user id, not {sorted(request.metadata)}"
    if request.service_tier is not None and service_tier_for(request.service_tier, WireFormat.ANTHROPIC,
                                                             request.source) is None:
        yield "service_tier", f"Anthropic has no service tier {request.service_tier!r} (only auto, standard_only)"
    if request.safety_identifier is not None:
        yield "safety_identifier", "Anthropic has no such parameter"


def _extra(request: ChatRequest, provider: WireFormat) -> Iterator[tuple[str, str]]:
    if provider is request.source:
        return
    api = "Anthropic Messages" if request.source is WireFormat.ANTHROPIC else "OpenAI Chat Completions"
    target = "an Anthropic target" if provider is WireFormat.ANTHROPIC else "an OpenAI target"
    for key in request.extra:
        yield key, f"a field of the {api} API that {target} does not have"


@dataclass(frozen=True)
class Plan:
    """Whether a target can serve a request: the parameters it must leave out (`drop`), or the first one it
    cannot honour and may not drop (`refused`, with why)."""

    drop: frozenset[str]
    refused: tuple[str, str] | None = None


def plan_target(request: ChatRequest, target: Target, allow_drop: frozenset[str]) -> Plan:
    """What serving `request` on `target` takes; the API's pre-check (api/submit.py) and the worker's router
    (worker/routing.py) decide alike."""
    unsupported = unsupported_params(request, provider_format(target.provider), target.model)
    refused = [(param, why) for param, why in unsupported.items()
               if not drop_allowed(param, allow_drop, request.source)]
    if refused:
        return Plan(drop=frozenset(), refused=refused[0])
    return Plan(drop=frozenset(unsupported))


# --- parts of the conversation ----------------------------------------------------------------------


def _joined(reasons: list[str], shown: int = 3) -> str:
    more = f"; and {len(reasons) - shown} more" if len(reasons) > shown else ""
    return "; ".join(reasons[:shown]) + more


def _message_parts(request: ChatRequest, provider: WireFormat) -> Iterator[str]:
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        yield from _message_fields(message, where, provider)
        for number, part in enumerate(message.content):
            yield from _part(request, part, f"{where}.content[{number}]", provider)


def _message_fields(message: Message, where: str, provider: WireFormat) -> Iterator[str]:
    if provider is WireFormat.ANTHROPIC and message.name is not None:
        yield f"{where}.name: Anthropic messages have no participant name"
    if provider is WireFormat.ANTHROPIC and message.role in ("system", "developer"):
        kinds = sorted({part.type for part in message.content if not isinstance(part, TextPart)})
        if kinds:
            yield f"{where} is a system message with {', '.join(kinds)} parts: Anthropic system prompts are text"


def _part(request: ChatRequest, part: object, where: str, provider: WireFormat) -> Iterator[str]:
    raw_source = getattr(part, "source", None) if getattr(part, "type", None) == "raw" else None
    if raw_source is not None and raw_source != provider.value:
        yield f"{where} is a {raw_source} block only {raw_source} can read"
    elif isinstance(part, AudioPart) and provider is WireFormat.ANTHROPIC:
        yield f"{where} is audio, which Anthropic does not take"
    elif isinstance(part, ImagePart):
        yield from _image(part, where, provider)
    elif isinstance(part, DocumentPart):
        yield from _document(request, part, where, provider)
    elif isinstance(part, TextPart) and part.citations and provider is not request.source:
        yield f"{where} has citations, which only Anthropic carries"
    elif isinstance(part, ToolResultPart) and provider is WireFormat.OPENAI and part.is_error:
        yield f"{where} is a tool result marked as an error: OpenAI tool messages have no error flag"
    elif isinstance(part, ToolCallPart) and provider is WireFormat.ANTHROPIC and not _json_object(part.arguments):
        yield f"{where}: the arguments of tool call {part.id!r} are not a JSON object, as Anthropic's input must be"


def _image(part: ImagePart, where: str, provider: WireFormat) -> Iterator[str]:
    if provider is not WireFormat.ANTHROPIC:
        return
    if part.detail in ("low", "high"):
        yield f"{where}.detail {part.detail!r}: Anthropic has no image resolution setting"
    if part.data is not None and part.media_type not in ANTHROPIC_IMAGE_TYPES:
        yield f"{where} is {part.media_type}: Anthropic takes JPEG, PNG, GIF and WebP images"


def _document(request: ChatRequest, part: DocumentPart, where: str, provider: WireFormat) -> Iterator[str]:
    if part.file_id is not None and provider is not request.source:
        yield f"{where} is a {request.source.value} file id, unknown to {provider.value}"
    if provider is WireFormat.ANTHROPIC:
        if part.data is not None and part.media_type != PDF and request.source is not WireFormat.ANTHROPIC:
            yield f"{where} is {part.media_type}: Anthropic takes inline documents as PDF data or plain text"
        return
    if part.text is not None:
        return  # a text part with the document's text (and title)
    if part.url is not None and part.data is None and part.file_id is None:
        yield f"{where} is a document URL: OpenAI takes documents as inline data or file ids"
    if part.citations is not None or part.context is not None:
        yield f"{where} has Anthropic document options (context, citations) OpenAI does not have"


def _json_object(arguments: str) -> bool:
    """Whether tool-call arguments are a JSON object (empty counts as `{}`). A model of another provider can
    write broken JSON; Anthropic's `tool_use.input` must be an object."""
    if not arguments.strip():
        return True
    try:
        return isinstance(json.loads(arguments), dict)
    except ValueError:
        return False
