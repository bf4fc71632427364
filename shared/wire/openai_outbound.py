"""The internal model of any source (an OpenAI client's request, or an Anthropic one falling back) rendered as
the keyword arguments of `AsyncOpenAI().chat.completions.create`.

How what OpenAI lacks is carried, decided once here:
- `system` (Anthropic's top-level prompt) is a leading system message; system/developer turns stay in place.
- Thinking parts in the history are not sent: they are Anthropic's, signed for Anthropic, and OpenAI takes no
  reasoning text back (its own reasoning is not shown, so never in a history).
- `cache_control` markers become nothing: OpenAI caches prompt prefixes automatically; a marker asks for what
  it does anyway, so it is not an unsupported parameter. `betas` (the `anthropic-beta` header) likewise: a beta
  only enables Anthropic fields, and those are checked one by one. Citations, document `context` and a tool
  result's `is_error` have no OpenAI form: unsupported unless dropped.
- Tool results are `role: "tool"` messages (one text part as a string, several as an array of text parts).
  Tool messages take text only, so images and documents a tool returned go in a user message right after the
  tool messages, introduced by a text part naming their tool call (carried, not dropped, even when `messages`
  is in `drop`).
- Documents: inline base64 as a `file` part (`file_data` data URL), a `file_id` as is, plain text as a text
  part; a document by URL has no OpenAI form (unsupported).
- Anthropic `thinking` budgets become `reasoning_effort` by `BUDGET_EFFORTS`; `adaptive` and `disabled` send
  no effort (the model's own default, which is what adaptive asks for).
Anything else the format cannot carry raises `UnsupportedParameter`, unless named in `drop` (the client's name
for it, as `shared.wire.capabilities.unsupported_params` gives it), in which case it is left out."""

from collections.abc import Iterable

from shared.content import (
    AudioPart,
    ContentPart,
    DocumentPart,
    ImagePart,
    OutputFormat,
    Reasoning,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from shared.errors import UnsupportedParameter
from shared.models import ChatRequest, Message, WireFormat
from shared.wire._common import client_name
from shared.wire.capabilities import refuse_undropped
from shared.wire.openai_common import MAX_STOP, REASONING_MODEL_PREFIXES, data_url

__all__ = ["BUDGET_EFFORTS", "render_request"]

Kwargs = dict[str, object]

BUDGET_EFFORTS: tuple[tuple[int, str], ...] = ((4096, "low"), (16384, "medium"))
"""An Anthropic `thinking.budget_tokens` up to 4096 is effort `low`, up to 16384 `medium`, above `high`."""
EFFORTS = {"max": "high"}
"""Anthropic `output_config.effort` values OpenAI spells differently."""
SERVICE_TIERS = {WireFormat.ANTHROPIC: {"standard_only": "default"}}
"""Anthropic `service_tier` values as OpenAI names them (`auto` is the same)."""


class _Renderer:
    def __init__(self, request: ChatRequest, drop: frozenset[str]) -> None:
        self.request = request
        self.drop = drop

    def dropped(self, field: str) -> bool:
        return client_name(field, self.request.source) in self.drop

    def refuse(self, field: str, reason: str) -> None:
        """Raise for `field` unless the client or operator allowed dropping it (then the caller leaves it out)."""
        if not self.dropped(field):
            raise UnsupportedParameter(client_name(field, self.request.source), reason)

    # --- messages ------------------------------------------------------------------------------------

    def messages(self) -> list[Kwargs]:
        rendered: list[Kwargs] = []
        if self.request.system:
            if any(part.citations for part in self.request.system):
                self.refuse("system", "citations on system text have no OpenAI form")
            rendered.append({"role": "system", "content": _text_content(self.request.system)})
        for message in self.request.messages:
            rendered += self.message(message)
        return rendered

    def message(self, message: Message) -> list[Kwargs]:
        if any(isinstance(part, TextPart) and part.citations for part in message.content):
            self.refuse("messages", "citations on message text have no OpenAI form")
        if message.role == "assistant":
            return [self.assistant(message)]
        results = [part for part in message.content if isinstance(part, ToolResultPart)]
        rest = [part for part in message.content if not isinstance(part, ToolResultPart | ThinkingPart)]
        rendered = [self.tool_message(result) for result in results]
        carried = [piece for result in results for piece in self.carried(result)]
        if message.role in ("system", "developer"):
            rendered.append(self.named({"role": message.role, "content": _text_content(self.texts(rest))}, message))
        elif rest or carried or not results:
            rendered_parts = [*carried, *(self.user_part(part) for part in rest)]
            parts = [part for part in rendered_parts if part is not None]
            rendered.append(self.named({"role": "user", "content": _compact(parts)}, message))
        return rendered

    def named(self, rendered: Kwargs, message: Message) -> Kwargs:
        if message.name is not None:
            rendered["name"] = message.name
        return rendered

    def texts(self, parts: Iterable[ContentPart]) -> list[TextPart]:
        texts: list[TextPart] = []
        for part in parts:
            if isinstance(part, TextPart):
                texts.append(part)
            else:
                self.refuse("messages", f"a {part.type} part in a system message has no OpenAI form")
        return texts

    def assistant(self, message: Message) -> Kwargs:
        texts: list[TextPart] = []
        calls: list[Kwargs] = []
        for part in message.content:
            if isinstance(part, TextPart):
                texts.append(part)
            elif isinstance(part, ToolCallPart):
                calls.append({"id": part.id, "type": "function",
                              "function": {"name": part.name, "arguments": part.arguments}})
            elif not isinstance(part, ThinkingPart):
                self.refuse("messages", f"a {part.type} part in an assistant message has no OpenAI form")
        rendered: Kwargs = {"role": "assistant", "content": _text_content(texts) if texts else None}
        if calls:
            rendered["tool_calls"] = calls
        if message.refusal is not None:
            rendered["refusal"] = message.refusal
        if rendered["content"] is None and not calls and message.refusal is None:
            rendered["content"] = ""
        return self.named(rendered, message)

    def tool_message(self, result: ToolResultPart) -> Kwargs:
        """Text only. `is_error` has no OpenAI field: unsupported unless dropped (then the text alone says it)."""
        if result.is_error:
            self.refuse("messages", f"the error flag of tool result {result.tool_call_id} has no OpenAI form")
        texts = [part for part in result.content if isinstance(part, TextPart)]
        return {"role": "tool", "tool_call_id": result.tool_call_id, "content": _text_content(texts) if texts else ""}

    def carried(self, result: ToolResultPart) -> list[Kwargs]:
        """Images and documents of a tool result, for the user message after the tool messages."""
        pieces = [self.user_part(part) for part in result.content if not isinstance(part, TextPart)]
        parts = [piece for piece in pieces if piece is not None]
        if not parts:
            return []
        return [{"type": "text", "text": f"Attachments of the result of tool call {result.tool_call_id}:"}, *parts]

    def user_part(self, part: ContentPart) -> Kwargs | None:
        if isinstance(part, TextPart):
            return {"type": "text", "text": part.text}
        if isinstance(part, ImagePart):
            return self.image(part)
        if isinstance(part, DocumentPart):
            return self.document(part)
        if isinstance(part, AudioPart):
            return {"type": "input_audio", "input_audio": {"data": part.data, "format": part.format}}
        self.refuse("messages", f"a {part.type} part in a user message has no OpenAI form")
        return None

    def image(self, part: ImagePart) -> Kwargs:
        url = part.url if part.data is None else data_url(part.media_type, part.data)
        image: Kwargs = {"url": url}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}

    def document(self, part: DocumentPart) -> Kwargs | None:
        if part.text is not None:
            return {"type": "text", "text": part.text if part.title is None else f"{part.title}\n\n{part.text}"}
        if part.context is not None or part.citations is not None:
            self.refuse("messages", "document context and citations have no OpenAI form")
        file: Kwargs = {}
        if part.data is not None:
            file["file_data"] = data_url(part.media_type, part.data) if part.media_type else part.data
        elif part.file_id is not None:
            file["file_id"] = part.file_id
        else:
            self.refuse("messages", "a document by URL has no OpenAI form (OpenAI takes inline data or a file id)")
            return None
        filename = part.filename or part.title
        if filename is not None:
            file["filename"] = filename
        return {"type": "file", "file": file}

    # --- the rest of the request ---------------------------------------------------------------------

    def tools(self) -> list[Kwargs]:
        rendered: list[Kwargs] = []
        for tool in self.request.tools:
            if tool.kind == "function":
                function: Kwargs = {"name": tool.name}
                optional = {"description": tool.description, "parameters": tool.parameters, "strict": tool.strict}
                function.update({key: value for key, value in optional.items() if value is not None})
                rendered.append({"type": "function", "function": function})
            elif tool.raw is not None and self.request.source == WireFormat.OPENAI:
                rendered.append(dict(tool.raw))
            else:
                self.refuse("tools", f"the {tool.kind} tool {tool.name!r} is not an OpenAI tool")
        return rendered

    def tool_choice(self) -> object:
        choice = self.request.tool_choice
        if choice is None:
            return None
        if choice.mode != "tool":
            return choice.mode
        kind = next((tool.kind for tool in self.request.tools if tool.name == choice.name), "function")
        kind = kind if kind in ("function", "custom") else "function"
        return {"type": kind, kind: {"name": choice.name}}

    def reasoning(self) -> str | None:
        reasoning = self.request.reasoning
        return None if reasoning is None else _effort(reasoning)

    def stop(self) -> list[str] | None:
        stop = self.request.stop
        if len(stop) > MAX_STOP:
            self.refuse("stop", f"OpenAI takes at most {MAX_STOP} stop sequences (got {len(stop)})")
            return None
        return list(stop) or None

    def service_tier(self) -> str | None:
        tier = self.request.service_tier
        return None if tier is None else SERVICE_TIERS.get(self.request.source, {}).get(tier, tier)

    def extra(self) -> Kwargs:
        """`extra` verbatim for an OpenAI client's request; from any other source each field is unsupported."""
        extra = dict(self.request.extra)
        if self.request.source == WireFormat.OPENAI:
            extra.pop("stream_options", None)
            return {key: value for key, value in extra.items() if key not in self.drop}
        for key in extra:
            if key not in self.drop:
                raise UnsupportedParameter(key, f"an {self.request.source.value} field OpenAI does not have")
        return {}


def render_request(request: ChatRequest, model: str, *, drop: frozenset[str] = frozenset()) -> Kwargs:
    """Keyword arguments for `AsyncOpenAI().chat.completions.create(**kw)`; None fields are omitted. The limit
    goes as `max_tokens`, except for reasoning models, which only take `max_completion_tokens`."""
    refuse_undropped(request, WireFormat.OPENAI, model, drop)
    renderer = _Renderer(request, drop)
    if request.top_k is not None:
        renderer.refuse("top_k", "OpenAI has no top_k sampling")
    limit = "max_completion_tokens" if model.startswith(REASONING_MODEL_PREFIXES) else "max_tokens"
    optional: dict[str, tuple[str, object]] = {
        limit: ("max_tokens", request.max_tokens),
        "temperature": ("temperature", request.temperature),
        "top_p": ("top_p", request.top_p),
        "stop": ("stop", renderer.stop()),
        "tools": ("tools", renderer.tools() or None),
        "tool_choice": ("tool_choice", renderer.tool_choice()),
        "parallel_tool_calls": ("parallel_tool_calls", request.parallel_tool_calls),
        "response_format": ("output_format", _response_format(request.output_format)),
        "reasoning_effort": ("reasoning", renderer.reasoning()),
        "seed": ("seed", request.seed),
        "frequency_penalty": ("frequency_penalty", request.frequency_penalty),
        "presence_penalty": ("presence_penalty", request.presence_penalty),
        "logit_bias": ("logit_bias", request.logit_bias),
        "logprobs": ("logprobs", request.logprobs),
        "top_logprobs": ("top_logprobs", request.top_logprobs),
        "n": ("n", request.n),
        "metadata": ("metadata", request.metadata),
        "service_tier": ("service_tier", renderer.service_tier()),
        "store": ("store", request.store),
        "prompt_cache_key": ("prompt_cache_key", request.prompt_cache_key),
        "safety_identifier": ("safety_identifier", request.safety_identifier),
        "user": ("user", request.user),
    }
    kw: Kwargs = {"model": model, "messages": renderer.messages()}
    kw.update({key: value for key, (field, value) in optional.items()
               if value is not None and not renderer.dropped(field)})
    if request.stream:
        kw["stream"] = True
        options = request.extra.get("stream_options") if request.source == WireFormat.OPENAI else None
        kw["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    extra = renderer.extra()
    if extra:
        kw["extra_body"] = extra
    return kw


def _text_content(parts: list[TextPart]) -> object:
    """One text part as a plain string (what most clients send), several as an array of text parts."""
    if len(parts) == 1:
        return parts[0].text
    return [{"type": "text", "text": part.text} for part in parts]


def _compact(parts: list[Kwargs]) -> object:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _effort(reasoning: Reasoning) -> str | None:
    if reasoning.effort is not None:
        return EFFORTS.get(reasoning.effort, reasoning.effort)
    if reasoning.mode != "enabled" or reasoning.budget_tokens is None:
        return None
    return next((effort for limit, effort in BUDGET_EFFORTS if reasoning.budget_tokens <= limit), "high")


def _response_format(output: OutputFormat | None) -> Kwargs | None:
    """`json_schema` needs a name: an Anthropic `output_format` has none, so it is called `response`."""
    if output is None:
        return None
    if output.type == "json_object":
        return {"type": "json_object"}
    spec: Kwargs = {"name": output.name or "response"}
    optional = {"description": output.description, "schema": output.json_schema, "strict": output.strict}
    spec.update({key: value for key, value in optional.items() if value is not None})
    return {"type": "json_schema", "json_schema": spec}
