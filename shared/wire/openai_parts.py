"""A Chat Completions client's messages read into the internal model: every role, every content part, assistant
tool calls (and the legacy `function_call`), refusals, and `role: "tool"` results. Each malformed piece is a
400 naming it (`messages[2].content[0].image_url.url`)."""

from collections.abc import Mapping
from typing import Literal

from shared.content import (
    AudioPart,
    ContentPart,
    DocumentPart,
    ImagePart,
    TextPart,
    ToolCallPart,
    ToolResultContent,
    ToolResultPart,
)
from shared.models import Message
from shared.wire._common import invalid, one_of, optional_str, require_object, require_str
from shared.wire.openai_common import check_base64, split_data_url, split_file_data

__all__ = ["legacy_call_id", "parse_messages"]

JSON = Mapping[str, object]

ROLES: tuple[Literal["system", "developer", "user", "assistant", "tool", "function"], ...] = (
    "system", "developer", "user", "assistant", "tool", "function")
Detail = Literal["auto", "low", "high"]  # `ImagePart.detail`
DETAILS: tuple[Detail, ...] = ("auto", "low", "high")


def legacy_call_id(name: str) -> str:
    """The id given to a legacy `function_call` (which has none) and to the `role: "function"` answer naming it,
    so the pair survives translation to tool calls and results."""
    return f"call_{name}"


def parse_messages(items: list[object]) -> list[Message]:
    """The messages in order. Tool (and legacy function) results become ToolResultParts of a user message;
    consecutive ones share it, as Anthropic wants them."""
    messages: list[Message] = []
    for index, item in enumerate(items):
        field = f"messages[{index}]"
        data = require_object(item, field)
        role = one_of(data.get("role"), ROLES)
        match role:
            case None:
                raise invalid(f"{field}.role",
                              f"must be one of {', '.join(map(repr, ROLES))} (got {data.get('role')!r})")
            case "tool" | "function":
                result = _tool_result(data, field, role == "function")
                previous = messages[-1] if messages else None
                if previous is not None and previous.role == "user" and _only_results(previous):
                    messages[-1] = previous.model_copy(update={"content": [*previous.content, result]})
                else:
                    messages.append(Message(role="user", content=[result]))
            case "assistant":
                messages.append(_assistant(data, field))
            case _:
                name = optional_str(data, "name", f"{field}.name")
                parts = _content(data.get("content"), f"{field}.content", user=role == "user")
                messages.append(Message(role=role, content=parts, name=name))
    return messages


def _only_results(message: Message) -> bool:
    return bool(message.content) and all(isinstance(part, ToolResultPart) for part in message.content)


def _tool_result(data: JSON, field: str, legacy: bool) -> ToolResultPart:
    call_id = legacy_call_id(require_str(data, "name", f"{field}.name")) if legacy else \
        require_str(data, "tool_call_id", f"{field}.tool_call_id")
    content = data.get("content")
    parts: list[ToolResultContent] = []
    if not (legacy and content is None):
        parts.extend(_text_parts(content, f"{field}.content"))
    return ToolResultPart(tool_call_id=call_id, content=parts)


def _assistant(data: JSON, field: str) -> Message:
    """Text (or text and refusal parts), `refusal`, `tool_calls` or the legacy `function_call`; content may be
    null when there are calls."""
    refusal = optional_str(data, "refusal", f"{field}.refusal")
    content = data.get("content")
    parts: list[ContentPart] = []
    if content is not None and content != "":
        parts, part_refusal = _assistant_content(content, f"{field}.content")
        refusal = refusal if refusal is not None else part_refusal
    parts += _tool_calls(data, field)
    if not parts and refusal is None and content is None:
        raise invalid(f"{field}.content", "is required unless the message has tool_calls or a refusal")
    return Message(role="assistant", content=parts, name=optional_str(data, "name", f"{field}.name"),
                   refusal=refusal)


def _assistant_content(content: object, field: str) -> tuple[list[ContentPart], str | None]:
    if isinstance(content, str):
        return [TextPart(text=content)], None
    if not isinstance(content, list) or not content:
        raise invalid(field, "must be a string or a non-empty array of text and refusal parts")
    parts: list[ContentPart] = []
    refusals: list[str] = []
    for index, item in enumerate(content):
        part = require_object(item, f"{field}[{index}]")
        if part.get("type") == "refusal":
            refusals.append(_string(part, "refusal", f"{field}[{index}].refusal"))
        elif part.get("type") == "text":
            parts.append(TextPart(text=_string(part, "text", f"{field}[{index}].text")))
        else:
            raise invalid(f"{field}[{index}].type", f"must be 'text' or 'refusal' (got {part.get('type')!r})")
    return parts, ("".join(refusals) if refusals else None)


def _tool_calls(data: JSON, field: str) -> list[ContentPart]:
    calls: list[ContentPart] = []
    raw_calls = data.get("tool_calls")
    if raw_calls is not None:
        if not isinstance(raw_calls, list):
            raise invalid(f"{field}.tool_calls", "must be an array")
        for index, item in enumerate(raw_calls):
            call_field = f"{field}.tool_calls[{index}]"
            call = require_object(item, call_field)
            if call.get("type", "function") != "function":
                raise invalid(f"{call_field}.type", f"must be 'function' (got {call.get('type')!r})")
            function = require_object(call.get("function"), f"{call_field}.function")
            calls.append(_call(require_str(call, "id", f"{call_field}.id"), function, f"{call_field}.function"))
    legacy = data.get("function_call")
    if legacy is not None:
        function = require_object(legacy, f"{field}.function_call")
        name = require_str(function, "name", f"{field}.function_call.name")
        calls.append(_call(legacy_call_id(name), function, f"{field}.function_call"))
    return calls


def _call(call_id: str, function: JSON, field: str) -> ToolCallPart:
    name = require_str(function, "name", f"{field}.name")
    return ToolCallPart(id=call_id, name=name, arguments=_string(function, "arguments", f"{field}.arguments"))


def _content(content: object, field: str, *, user: bool) -> list[ContentPart]:
    """A string, or parts: text for every role; images, audio and files in user messages only."""
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not user:
        return list(_text_parts(content, field))
    if not isinstance(content, list) or not content:
        raise invalid(field, "must be a string or a non-empty array of content parts")
    return [_user_part(require_object(item, f"{field}[{index}]"), f"{field}[{index}]")
            for index, item in enumerate(content)]


def _text_parts(content: object, field: str) -> list[TextPart]:
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not isinstance(content, list) or not content:
        raise invalid(field, "must be a string or a non-empty array of text parts")
    parts: list[TextPart] = []
    for index, item in enumerate(content):
        part = require_object(item, f"{field}[{index}]")
        if part.get("type") != "text":
            raise invalid(f"{field}[{index}].type", f"must be 'text' (got {part.get('type')!r})")
        parts.append(TextPart(text=_string(part, "text", f"{field}[{index}].text")))
    return parts


def _user_part(part: JSON, field: str) -> ContentPart:
    kind = part.get("type")
    if kind == "text":
        return TextPart(text=_string(part, "text", f"{field}.text"))
    if kind == "image_url":
        return _image(require_object(part.get("image_url"), f"{field}.image_url"), f"{field}.image_url")
    if kind == "input_audio":
        audio = require_object(part.get("input_audio"), f"{field}.input_audio")
        data = require_str(audio, "data", f"{field}.input_audio.data")
        check_base64(data, f"{field}.input_audio.data")
        return AudioPart(data=data, format=require_str(audio, "format", f"{field}.input_audio.format"))
    if kind == "file":
        return _file(require_object(part.get("file"), f"{field}.file"), f"{field}.file")
    allowed = "'text', 'image_url', 'input_audio' or 'file'"
    raise invalid(f"{field}.type", f"must be {allowed} (got {kind!r})")


def _image(image: JSON, field: str) -> ImagePart:
    url = require_str(image, "url", f"{field}.url")
    detail = _detail(image.get("detail"), f"{field}.detail")
    inline = split_data_url(url, f"{field}.url")
    if inline is None:
        return ImagePart(url=url, detail=detail)
    return ImagePart(media_type=inline[0], data=inline[1], detail=detail)


def _detail(value: object, field: str) -> Detail | None:
    if value is None:
        return None
    for detail in DETAILS:
        if value == detail:
            return detail
    raise invalid(field, f"must be one of {', '.join(map(repr, DETAILS))}")


def _file(file: JSON, field: str) -> DocumentPart:
    """`file_data` is a data URL (a bare base64 string is kept as it came), `file_id` an uploaded file."""
    file_data = optional_str(file, "file_data", f"{field}.file_data")
    file_id = optional_str(file, "file_id", f"{field}.file_id")
    filename = optional_str(file, "filename", f"{field}.filename")
    if not file_data and not file_id:
        raise invalid(field, "must have 'file_data' or 'file_id'")
    media_type, data = split_file_data(file_data, f"{field}.file_data") if file_data else (None, None)
    return DocumentPart(media_type=media_type, data=data, file_id=file_id, filename=filename)


def _string(data: JSON, key: str, field: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    return value
