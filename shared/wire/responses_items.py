"""A Responses `input` read into the internal model's messages: a string, or items (messages with
`input_text` / `input_image` / `input_file` parts, assistant `output_text` / `refusal` parts, `function_call`,
`function_call_output` and `reasoning` items). Assistant-side items in a row make one assistant turn and
function outputs in a row one user turn, as the Chat Completions and Messages APIs want them. Each malformed
or unsupported item is a 400 naming it (`input[2].content[0].type`).

Reasoning items are carried when they hold the `encrypted_content` this gateway rendered (`seal_thinking`):
it wraps the provider's signature, so the thinking goes back to the provider that made it."""

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Literal

from shared.content import (
    ContentPart,
    DocumentPart,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultContent,
    ToolResultPart,
)
from shared.models import Message
from shared.wire._common import invalid, one_of, optional_str, require_object, require_str
from shared.wire.openai_common import split_data_url, split_file_data

__all__ = ["SEAL_PREFIX", "input_items", "parse_input", "seal_thinking"]

JSON = Mapping[str, object]
Detail = Literal["auto", "low", "high"]
DETAILS: tuple[Detail, ...] = ("auto", "low", "high")
ROLES: tuple[Literal["user", "assistant", "system", "developer"], ...] = ("user", "assistant", "system", "developer")
SEAL_PREFIX = "gw1."
"""Marks an `encrypted_content` this gateway wrote: base64url of the thinking block's signature, redacted data
and provider as JSON (opaque to clients, as OpenAI's own is)."""
ITEM_TYPES = "'message', 'function_call', 'function_call_output' or 'reasoning'"


def seal_thinking(part: ThinkingPart) -> str:
    """The `encrypted_content` of a reasoning item: what the provider needs to accept the thinking back."""
    sealed = json.dumps({"s": part.signature, "r": part.redacted, "p": part.provider}, separators=(",", ":"))
    return SEAL_PREFIX + base64.urlsafe_b64encode(sealed.encode()).decode()


def input_items(value: object, response_id: str) -> list[dict[str, object]]:
    """`input` as the items `GET /v1/responses/{id}/input_items` lists: a string is one user message, string
    content becomes an `input_text` part, and each item without an id gets one (`msg_<hex>_in<position>`).
    Call it on an `input` that `parse_input` accepted."""
    raw = [{"type": "message", "role": "user", "content": value}] if isinstance(value, str) else value
    hexed = response_id.removeprefix("resp_")
    items: list[dict[str, object]] = []
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        entry = {"type": "message", **dict(item)} if isinstance(item, Mapping) else {}
        if entry.get("type") == "message" and isinstance(entry.get("content"), str):
            kind = "output_text" if entry.get("role") == "assistant" else "input_text"
            entry["content"] = [{"type": kind, "text": entry["content"]}]
        prefix = {"function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}.get(str(entry.get("type")),
                                                                                               "msg")
        entry.setdefault("id", f"{prefix}_{hexed}_in{index}")
        items.append(entry)
    return items


def parse_input(value: object) -> list[Message]:
    """`input`: a string (one user message) or a non-empty array of items."""
    if isinstance(value, str):
        return [Message(role="user", content=[TextPart(text=value)])]
    if not isinstance(value, list) or not value:
        raise invalid("input", "is required and must be a string or a non-empty array of items")
    messages: list[Message] = []
    for index, item in enumerate(value):
        field = f"input[{index}]"
        role, parts = _item(require_object(item, field), field)
        previous = messages[-1] if messages else None
        if previous is not None and _joins(previous, role, parts):
            messages[-1] = previous.model_copy(update={"content": [*previous.content, *parts]})
        else:
            messages.append(Message(role=role, content=parts))
    return messages


def _joins(previous: Message, role: str, parts: list[ContentPart]) -> bool:
    """Assistant items in a row are one turn; so are function outputs in a row (a user turn of results)."""
    if previous.role != role:
        return False
    if role == "assistant":
        return True
    results = all(isinstance(part, ToolResultPart) for part in previous.content)
    return results and all(isinstance(part, ToolResultPart) for part in parts)


def _item(data: JSON, field: str) -> tuple[Literal["user", "assistant", "system", "developer"], list[ContentPart]]:
    kind = data.get("type", "message")
    if kind == "message":
        return _message(data, field)
    if kind == "function_call":
        call = ToolCallPart(id=require_str(data, "call_id", f"{field}.call_id"),
                            name=require_str(data, "name", f"{field}.name"),
                            arguments=_string(data, "arguments", f"{field}.arguments"))
        return "assistant", [call]
    if kind == "function_call_output":
        return "user", [_function_output(data, field)]
    if kind == "reasoning":
        return "assistant", [_reasoning(data, field)]
    raise invalid(f"{field}.type", f"must be {ITEM_TYPES} (got {kind!r}): the gateway serves Responses through "
                                   "Chat Completions and Messages targets, which have no built-in tools or item "
                                   "references")


def _message(data: JSON, field: str) -> tuple[Literal["user", "assistant", "system", "developer"], list[ContentPart]]:
    role = one_of(data.get("role"), ROLES)
    if role is None:
        raise invalid(f"{field}.role", f"must be one of {', '.join(map(repr, ROLES))} (got {data.get('role')!r})")
    content = data.get("content")
    if isinstance(content, str):
        return role, [TextPart(text=content)]
    if not isinstance(content, list):
        raise invalid(f"{field}.content", "must be a string or an array of content parts")
    parts: list[ContentPart] = []
    for index, item in enumerate(content):
        part = require_object(item, f"{field}.content[{index}]")
        parts.append(_part(part, f"{field}.content[{index}]", assistant=role == "assistant"))
    return role, parts


def _part(part: JSON, field: str, *, assistant: bool) -> ContentPart:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return TextPart(text=_string(part, "text", f"{field}.text"))
    if assistant and kind == "refusal":
        return TextPart(text=_string(part, "refusal", f"{field}.refusal"))
    if not assistant and kind == "input_image":
        return _image(part, field)
    if not assistant and kind == "input_file":
        return _file(part, field)
    allowed = "'output_text' or 'refusal'" if assistant else "'input_text', 'input_image' or 'input_file'"
    raise invalid(f"{field}.type", f"must be {allowed} (got {kind!r})")


def _image(part: JSON, field: str) -> ImagePart:
    detail = part.get("detail")
    if detail is not None and one_of(detail, DETAILS) is None:
        raise invalid(f"{field}.detail", f"must be one of {', '.join(map(repr, DETAILS))}")
    if part.get("file_id") is not None:
        raise invalid(f"{field}.file_id", "is not supported: the gateway has no Files API; send image_url")
    url = require_str(part, "image_url", f"{field}.image_url")
    chosen = one_of(detail, DETAILS)
    inline = split_data_url(url, f"{field}.image_url")
    if inline is None:
        return ImagePart(url=url, detail=chosen)
    return ImagePart(media_type=inline[0], data=inline[1], detail=chosen)


def _file(part: JSON, field: str) -> DocumentPart:
    """`file_data` is a data URL (a bare base64 string is kept as it came), `file_url` a URL, `file_id` a
    provider's uploaded file (same-provider only, as in Chat Completions)."""
    file_data = optional_str(part, "file_data", f"{field}.file_data")
    file_id = optional_str(part, "file_id", f"{field}.file_id")
    file_url = optional_str(part, "file_url", f"{field}.file_url")
    filename = optional_str(part, "filename", f"{field}.filename")
    if not (file_data or file_id or file_url):
        raise invalid(field, "must have 'file_data', 'file_url' or 'file_id'")
    media_type, data = split_file_data(file_data, f"{field}.file_data") if file_data else (None, None)
    return DocumentPart(media_type=media_type, data=data, url=file_url, file_id=file_id, filename=filename)


def _function_output(data: JSON, field: str) -> ToolResultPart:
    call_id = require_str(data, "call_id", f"{field}.call_id")
    output = data.get("output")
    if isinstance(output, str):
        return ToolResultPart(tool_call_id=call_id, content=[TextPart(text=output)])
    if not isinstance(output, list):
        raise invalid(f"{field}.output", "must be a string or an array of input parts")
    content: list[ToolResultContent] = []
    for index, item in enumerate(output):
        part = _part(require_object(item, f"{field}.output[{index}]"), f"{field}.output[{index}]", assistant=False)
        if isinstance(part, TextPart | ImagePart | DocumentPart):
            content.append(part)
    return ToolResultPart(tool_call_id=call_id, content=content)


def _reasoning(data: JSON, field: str) -> ThinkingPart:
    sealed = data.get("encrypted_content")
    if not isinstance(sealed, str) or not sealed.startswith(SEAL_PREFIX):
        raise invalid(f"{field}.encrypted_content", "is required on a reasoning item: the gateway carries "
                      "reasoning back only with the encrypted_content it returned (request it with "
                      "include: ['reasoning.encrypted_content'], or chain with previous_response_id)")
    try:
        fields = json.loads(base64.urlsafe_b64decode(sealed[len(SEAL_PREFIX):].encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"{field}.encrypted_content", "is not an encrypted_content this gateway returned") from exc
    if not isinstance(fields, dict) or not all(isinstance(fields.get(k), str | None) for k in ("s", "r", "p")):
        raise invalid(f"{field}.encrypted_content", "is not an encrypted_content this gateway returned")
    return ThinkingPart(text=_reasoning_text(data, field), signature=fields.get("s"), redacted=fields.get("r"),
                        provider=fields.get("p"))


def _reasoning_text(data: JSON, field: str) -> str:
    """The thinking text is the item's `reasoning_text` content as the gateway rendered it (its summary is
    empty: the providers behind it give the thinking itself, not a summary)."""
    content = data.get("content")
    if content is None:
        return ""
    if not isinstance(content, list):
        raise invalid(f"{field}.content", "must be an array of reasoning_text parts")
    texts: list[str] = []
    for index, item in enumerate(content):
        part = require_object(item, f"{field}.content[{index}]")
        if part.get("type") != "reasoning_text":
            raise invalid(f"{field}.content[{index}].type", "must be 'reasoning_text'")
        texts.append(_string(part, "text", f"{field}.content[{index}].text"))
    return "".join(texts)


def _string(data: JSON, key: str, field: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    return value
