"""What goes back to a Responses client: the `response` object (`render_response`) for an answer of any
provider, its output items and usage, and errors in OpenAI's shape. The stream renderer
(shared/wire/responses_stream.py) builds the same items, with the same ids, one event at a time.

Output item ids are derived from the response id and the item's position (`item_id`), so a response read back
(`GET /v1/responses/{id}`) names the items its stream named. Thinking (Anthropic's) is a `reasoning` item:
its text as `reasoning_text` content and its signature sealed in `encrypted_content`."""

import time
from typing import Any

from pydantic import BaseModel, Field

from shared.content import TextPart, ThinkingPart, ToolCallPart
from shared.errors import GatewayError
from shared.models import Completion, FinishReason, Usage
from shared.wire.openai_render import render_error
from shared.wire.responses_items import seal_thinking

__all__ = [
    "ResponseShell",
    "function_call_item",
    "item_id",
    "message_item",
    "reasoning_item",
    "render_error",
    "render_output",
    "render_response",
    "render_response_error",
    "render_usage",
    "response_status",
]

INCOMPLETE_REASONS = {FinishReason.LENGTH: "max_output_tokens", FinishReason.CONTENT_FILTER: "content_filter"}
RATE_LIMITED = 429
ITEM_PREFIXES = {"message": "msg", "function_call": "fc", "reasoning": "rs"}


class ResponseShell(BaseModel):
    """A response's identity and the request parameters it echoes (`ResponsesRequest.echo`)."""

    id: str
    model: str
    created_at: int = Field(default_factory=lambda: int(time.time()))
    echo: dict[str, Any] = Field(default_factory=dict)


def item_id(response_id: str, kind: str, index: int) -> str:
    """`msg_`/`fc_`/`rs_` + the response's own hex + the position: stable across stream and read-back."""
    return f"{ITEM_PREFIXES[kind]}_{response_id.removeprefix('resp_')}_{index}"


def response_status(completion: Completion) -> tuple[str, dict[str, str] | None]:
    """`completed`, or `incomplete` with its reason when the answer was cut (max tokens, content filter)."""
    reason = INCOMPLETE_REASONS.get(completion.finish_reason)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def render_response(shell: ResponseShell, *, status: str, completion: Completion | None = None,
                    output: list[dict[str, object]] | None = None, error: GatewayError | None = None,
                    ) -> dict[str, object]:
    """The `response` object in any state; `output` overrides the items rendered from `completion` (the
    stream renderer passes the items it streamed)."""
    incomplete = response_status(completion)[1] if completion is not None else None
    body: dict[str, object] = {
        "id": shell.id, "object": "response", "created_at": shell.created_at, "status": status,
        "model": shell.model, **shell.echo,
        "output": output if output is not None else render_output(shell.id, completion) if completion else [],
        "error": render_response_error(error) if error is not None else None,
        "incomplete_details": incomplete, "usage": render_usage(completion.usage) if completion else None,
    }
    if completion is not None:
        body["model"] = shell.model
        body["provider"] = completion.provider
        body["served_model"] = completion.model
        body["completed_at"] = completion.created or None
    return body


def render_response_error(error: GatewayError) -> dict[str, object]:
    """A failed response's `error`: OpenAI's codes are a closed set (`server_error`, `rate_limit_exceeded`,
    ...), so the gateway's own code is beside it in `gateway_code`."""
    code = "rate_limit_exceeded" if error.status == RATE_LIMITED else "server_error"
    return {"code": code, "message": error.message, "gateway_code": error.code}


def render_output(response_id: str, completion: Completion) -> list[dict[str, object]]:
    """The answer's items in order: reasoning, message (text and any refusal), function calls."""
    if not completion.parts:
        return [message_item(item_id(response_id, "message", 0), completion.content, completion.refusal)]
    items: list[dict[str, object]] = []
    texts: list[str] = []
    for part in completion.parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
            continue
        if texts:
            items.append(message_item(item_id(response_id, "message", len(items)), "".join(texts), None))
            texts = []
        if isinstance(part, ThinkingPart):
            items.append(reasoning_item(item_id(response_id, "reasoning", len(items)), part))
        elif isinstance(part, ToolCallPart):
            items.append(function_call_item(item_id(response_id, "function_call", len(items)), part.id, part.name,
                                            part.arguments))
    if texts or completion.refusal:
        items.append(message_item(item_id(response_id, "message", len(items)), "".join(texts), completion.refusal))
    return items


def message_item(identifier: str, text: str, refusal: str | None, status: str = "completed") -> dict[str, object]:
    content: list[dict[str, object]] = []
    if text or not refusal:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": identifier, "type": "message", "role": "assistant", "status": status, "content": content}


def reasoning_item(identifier: str, part: ThinkingPart) -> dict[str, object]:
    content = [{"type": "reasoning_text", "text": part.text}] if part.text else []
    return {"id": identifier, "type": "reasoning", "summary": [], "content": content,
            "encrypted_content": seal_thinking(part), "status": "completed"}


def function_call_item(identifier: str, call_id: str, name: str, arguments: str,
                       status: str = "completed") -> dict[str, object]:
    return {"id": identifier, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def render_usage(usage: Usage) -> dict[str, object]:
    """Cached tokens (read and written: Anthropic's cache writes, both lifetimes) are part of `input_tokens`,
    reasoning tokens of `output_tokens`, as OpenAI counts them."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_prompt_tokens,
                                 "cache_write_tokens": usage.cache_write_tokens + usage.cache_write_1h_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }
