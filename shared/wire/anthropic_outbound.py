"""The internal model -> keyword arguments of `AsyncAnthropic().messages.create` (`render_request`), whatever
format the request came in.

Decisions, each a translation the client would recognise or a refusal naming the parameter
(`UnsupportedParameter`, unless the parameter is in `drop`, when it is left out):
- OpenAI system/developer messages before the first other turn become `system` blocks; later ones stay in
  place as `role: "system"` messages, which needs the `mid-conversation-system-2026-04-07` beta: added to
  `anthropic-beta` when such a message exists in a request of another format (an Anthropic client sends
  its own betas, forwarded as they are).
- Tool results: consecutive user turns of a converted request are merged, tool results first, because
  Anthropic wants all results of one assistant turn in the next user turn, ahead of any text.
- A tool call whose arguments are not a JSON object (a model of another provider can write broken JSON)
  cannot become a `tool_use.input`: refused (naming `messages`), never guessed as `{}`.
- Thinking parts go back only to Anthropic, which made them: it checks their signatures, and reasoning of
  another provider has none, so those are omitted (they are that provider's private state, not input).
- `response_format` `json_schema` -> `output_config.format` (GA, no beta); the schema's `description` gets
  OpenAI's format description when it has none; `name`/`strict` have no Anthropic meaning (its structured
  outputs are always strict). `json_object` is refused: Anthropic's structured outputs need a schema whose
  objects are closed, so "any JSON object" has no equivalent.
- `reasoning_effort` -> `thinking: {type: enabled, budget_tokens}` by `EFFORT_BUDGETS` (the budget must be
  at least 1024 and below `max_tokens`; with no `max_tokens` the default answer room is added on top), "none"
  -> thinking disabled. An Anthropic client's `output_config.effort` and `thinking` go as they came.
- Sampling (`temperature`, `top_p`, `top_k`) travels in `extra_body`: the SDK has no arguments for them.
  A temperature above Anthropic's 1 is refused, not clamped.
"""

from typing import Any

from shared.content import AudioPart, ImagePart, RawPart, TextPart, ThinkingPart, Tool, ToolCallPart
from shared.errors import UnsupportedParameter
from shared.models import ChatRequest, Message, WireFormat
from shared.wire._common import client_name
from shared.wire.anthropic_blocks import ANTHROPIC, Part, render_part, render_text, tool_input
from shared.wire.capabilities import refuse_undropped

__all__ = ["DEFAULT_MAX_TOKENS", "EFFORT_BUDGETS", "MID_CONVERSATION_SYSTEM_BETA", "render_request"]

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires `max_tokens`; used when a request (e.g. from an OpenAI client) has none."""

MID_CONVERSATION_SYSTEM_BETA = "mid-conversation-system-2026-04-07"
MIN_THINKING_BUDGET = 1024
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 32000}
"""Thinking budget per OpenAI `reasoning_effort`: Anthropic's minimum for the lowest level, then doubling-ish
steps up to the 32k Anthropic suggests as the point past which batch processing is advisable."""

SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}
"""OpenAI `service_tier` values with an Anthropic meaning (`flex`, `scale`, `priority` have none)."""

OPENAI_ONLY = ("seed", "frequency_penalty", "presence_penalty", "logit_bias", "top_logprobs", "prompt_cache_key",
               "safety_identifier")
SDK_ARGUMENTS = frozenset({
    "model", "max_tokens", "messages", "cache_control", "container", "diagnostics", "inference_geo", "metadata",
    "output_config", "service_tier", "speed", "stop_sequences", "stream", "system", "thinking", "tool_choice",
    "tools", "user_profile_id", "workspace_id",
})
"""What `messages.create` takes as arguments (anthropic 2.17); anything else goes in `extra_body`."""
MERGED_EXTRA = ("thinking", "output_config", "metadata")
"""Objects the model splits: their unmodelled keys sit in `extra` and are merged back, not overwritten."""


class _Renderer:
    def __init__(self, request: ChatRequest, drop: frozenset[str]) -> None:
        self.request = request
        self.drop = drop
        self.same = request.source == WireFormat.ANTHROPIC
        self.mid_system = False

    def refuse(self, param: str, reason: str) -> None:
        """Refuse an untranslatable parameter, unless the operator or client allowed dropping it."""
        if param not in self.drop:
            raise UnsupportedParameter(param, reason)

    def field(self, internal: str) -> str:
        return client_name(internal, self.request.source)


def sent_max_tokens(request: ChatRequest) -> int:
    """The `max_tokens` an Anthropic target is sent for `request`: the client's, else the default answer room
    plus the thinking budget an OpenAI-style reasoning effort translates to (what budgets must reserve)."""
    if request.max_tokens is not None:
        return request.max_tokens
    reasoning = request.reasoning
    translated = request.source is not WireFormat.ANTHROPIC and reasoning is not None and reasoning.mode is None
    effort = reasoning.effort if translated and reasoning is not None else None
    return DEFAULT_MAX_TOKENS + (EFFORT_BUDGETS.get(effort, 0) if effort is not None else 0)


def render_request(request: ChatRequest, model: str, *, drop: frozenset[str] = frozenset()) -> dict[str, object]:
    """Keyword arguments for `AsyncAnthropic().messages.create(**kw)`; unset fields are omitted."""
    refuse_undropped(request, WireFormat.ANTHROPIC, model, drop)
    r = _Renderer(request, drop)
    _check_openai_only(r)
    system, messages = _conversation(r)
    kw: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
                          "messages": messages}
    if system:
        kw["system"] = system[0]["text"] if _plain(system) else system
    if request.stop:
        kw["stop_sequences"] = list(request.stop)
    if request.user is not None:
        kw["metadata"] = {"user_id": request.user}
    if request.stream:
        kw["stream"] = True
    _service_tier(r, kw)
    _tools(r, kw)
    _output(r, kw)
    _reasoning(r, kw)
    body = _sampling(r)
    body.update(_extra(r, kw))
    body.update({key: kw.pop(key) for key in list(kw) if key not in SDK_ARGUMENTS})
    if body:
        kw["extra_body"] = body
    betas = list(request.betas) if r.same else []
    if r.mid_system and not r.same:
        betas.append(MID_CONVERSATION_SYSTEM_BETA)
    if betas:
        kw["extra_headers"] = {"anthropic-beta": ",".join(betas)}
    return kw


def _check_openai_only(r: _Renderer) -> None:
    request = r.request
    for name in OPENAI_ONLY:
        if getattr(request, name) is not None:
            r.refuse(name, "Anthropic has no such parameter")
    if request.logprobs:
        r.refuse("logprobs", "Anthropic returns no log probabilities")
    if request.n is not None and request.n > 1:
        r.refuse("n", "Anthropic returns one answer per request")
    if request.store:
        r.refuse("store", "Anthropic does not store completions for later retrieval")
    if request.metadata:
        r.refuse("metadata", "Anthropic metadata takes only a user id")


# --- conversation -----------------------------------------------------------------------------------


def _plain(blocks: list[dict[str, Any]]) -> bool:
    """One text block without cache control or citations: sent as a plain string, as clients write it."""
    return len(blocks) == 1 and set(blocks[0]) == {"type", "text"} and blocks[0]["type"] == "text"


def _conversation(r: _Renderer) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system = [render_text(part) for part in r.request.system]
    messages: list[dict[str, Any]] = []
    leading = not r.same
    for index, message in enumerate(r.request.messages):
        if message.role in ("system", "developer"):
            blocks = _system_blocks(r, message, index)
            if leading:
                system += blocks
            else:
                r.mid_system = True
                messages.append({"role": "system", "content": blocks})
            continue
        leading = False
        blocks = _blocks(r, message, index)
        previous = messages[-1] if messages else None
        if not r.same and previous is not None and previous["role"] == message.role == "user" and any(
            block["type"] == "tool_result" for block in previous["content"]
        ):
            previous["content"] = _results_first(previous["content"] + blocks)
            continue
        messages.append({"role": message.role, "content": blocks})
    for turn in messages:  # a system turn keeps its blocks: the form the beta documents
        if turn["role"] != "system" and _plain(turn["content"]):
            turn["content"] = turn["content"][0]["text"]
    return system, messages


def _results_first(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == "tool_result"] + [b for b in blocks if b["type"] != "tool_result"]


def _system_blocks(r: _Renderer, message: Message, index: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            blocks.append(render_text(part))
        else:
            r.refuse("messages", f"messages[{index}] is a system message with a {part.type} part; Anthropic "
                                 "system prompts are text")
    return blocks


def _blocks(r: _Renderer, message: Message, index: int) -> list[dict[str, Any]]:
    if message.name is not None:
        r.refuse("messages", f"messages[{index}].name: Anthropic messages have no participant name")
    blocks = [render_part(part) for part in _parts(r, message, index)]
    if message.refusal:
        blocks.append({"type": "text", "text": message.refusal})  # what the assistant said, as text
    return blocks


def _parts(r: _Renderer, message: Message, index: int) -> list[Part]:
    kept: list[Part] = []
    for part in message.content:
        where = f"messages[{index}]"
        if isinstance(part, AudioPart):
            r.refuse("messages", f"{where} has audio input, which Anthropic does not take")
        elif isinstance(part, ThinkingPart):
            if part.provider == ANTHROPIC:
                kept.append(part)
        elif isinstance(part, RawPart) and part.source != ANTHROPIC:
            r.refuse("messages", f"{where} has a {part.source} block Anthropic cannot read")
        elif isinstance(part, ImagePart) and part.detail not in (None, "auto"):
            r.refuse("messages", f"{where} asks for image detail '{part.detail}', which Anthropic has no setting for")
            kept.append(part.model_copy(update={"detail": None}))
        elif isinstance(part, ToolCallPart) and tool_input(part.arguments) is None:
            r.refuse("messages", f"{where}: the arguments of tool call {part.id!r} are not a JSON object")
            kept.append(part.model_copy(update={"arguments": "{}"}))
        else:
            kept.append(part)
    return kept


# --- parameters -------------------------------------------------------------------------------------


def _service_tier(r: _Renderer, kw: dict[str, Any]) -> None:
    tier = r.request.service_tier
    if tier is None:
        return
    if r.same:
        kw["service_tier"] = tier
    elif tier in SERVICE_TIERS:
        kw["service_tier"] = SERVICE_TIERS[tier]
    else:
        r.refuse("service_tier", f"Anthropic has no '{tier}' tier (only auto and standard_only)")


def _tools(r: _Renderer, kw: dict[str, Any]) -> None:
    request = r.request
    tools = [tool for tool in (_tool(r, tool) for tool in request.tools) if tool is not None]
    if tools:
        kw["tools"] = tools
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is False and tools:
        kw["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}
    if choice is None:
        return
    rendered: dict[str, Any] = {"type": {"required": "any"}.get(choice.mode, choice.mode)}
    if choice.mode == "tool":
        rendered["name"] = choice.name
    parallel = request.parallel_tool_calls
    if choice.mode != "none" and parallel is not None and (not parallel or r.same):
        rendered["disable_parallel_tool_use"] = not parallel
    kw["tool_choice"] = rendered


def _tool(r: _Renderer, tool: Tool) -> dict[str, Any] | None:
    if tool.kind != "function":
        if r.same and tool.raw is not None:
            return dict(tool.raw)
        r.refuse("tools", f"tool {tool.name!r} is a {tool.kind!r} tool Anthropic does not have")
        return None
    rendered: dict[str, Any] = dict(tool.raw) if r.same and tool.raw else {}
    rendered["name"] = tool.name
    if tool.description is not None:
        rendered["description"] = tool.description
    rendered["input_schema"] = tool.parameters if tool.parameters is not None else {"type": "object",
                                                                                    "properties": {}}
    if tool.strict is not None:
        rendered["strict"] = tool.strict
    if tool.cache_control is not None:
        rendered["cache_control"] = tool.cache_control
    return rendered


def _output(r: _Renderer, kw: dict[str, Any]) -> None:
    spec = r.request.output_format
    if spec is None:
        return
    if spec.type == "json_object" or spec.json_schema is None:
        r.refuse(r.field("output_format"), "Anthropic structured outputs need a JSON schema (JSON mode without "
                                           "one has no equivalent)")
        return
    schema = spec.json_schema
    if spec.description and "description" not in schema:
        schema = {**schema, "description": spec.description}
    rendered = {"type": "json_schema", "schema": schema}
    if r.same and any(beta.startswith("structured-outputs-") for beta in r.request.betas):
        kw["output_format"] = rendered  # the beta's shape, as the client sent it
    else:
        kw.setdefault("output_config", {})["format"] = rendered


def _reasoning(r: _Renderer, kw: dict[str, Any]) -> None:
    reasoning = r.request.reasoning
    if reasoning is None:
        return
    if r.same:
        if reasoning.mode is not None:
            kw["thinking"] = {"type": reasoning.mode} | (
                {"budget_tokens": reasoning.budget_tokens} if reasoning.budget_tokens is not None else {})
        if reasoning.effort is not None:
            kw.setdefault("output_config", {})["effort"] = reasoning.effort
        return
    effort = reasoning.effort
    if effort is None:
        return
    if effort == "none":
        kw["thinking"] = {"type": "disabled"}
        return
    param = r.field("reasoning")
    if effort not in EFFORT_BUDGETS:
        r.refuse(param, f"effort '{effort}' has no Anthropic thinking budget")
        return
    budget = EFFORT_BUDGETS[effort]
    if r.request.max_tokens is None:
        kw["max_tokens"] = DEFAULT_MAX_TOKENS + budget  # room for the thinking and for the answer
    else:
        budget = min(budget, r.request.max_tokens - 1)
        if budget < MIN_THINKING_BUDGET:
            r.refuse(param, f"max_tokens {r.request.max_tokens} leaves no room for Anthropic's minimum thinking "
                            f"budget of {MIN_THINKING_BUDGET} tokens")
            return
    kw["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _sampling(r: _Renderer) -> dict[str, Any]:
    request = r.request
    body: dict[str, Any] = {}
    if request.temperature is not None:
        if request.temperature <= 1:
            body["temperature"] = request.temperature
        else:
            r.refuse("temperature", f"Anthropic takes 0 to 1 (got {request.temperature:g})")
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    return body


def _extra(r: _Renderer, kw: dict[str, Any]) -> dict[str, Any]:
    """Unmodelled fields: an Anthropic client's go back verbatim (split objects merged with their modelled
    half); another format's fields mean nothing to Anthropic and are refused by name."""
    if not r.same:
        for key in r.request.extra:
            r.refuse(key, f"'{key}' is a {r.request.source.value} parameter Anthropic does not have")
        return {}
    body: dict[str, Any] = {}
    for key, value in r.request.extra.items():
        if key in MERGED_EXTRA and isinstance(value, dict):
            kw[key] = {**value, **kw.get(key, {})}
        else:
            body[key] = value
    return body
