"""Anthropic content blocks <-> the gateway's content parts, both ways, for requests and answers alike.

Reading (`parse_block`) is strict: a client's malformed block is a 400 naming it
(`messages[2].content[0].source.data`). Blocks the model has no shape for (server-tool blocks, search
results, Files-API images, ...) are kept verbatim as `RawPart`s: they reach an Anthropic target unchanged,
and any other target refuses them by name (`shared.wire.capabilities`). Base64 payloads are checked once
with one regular expression over the client's string (no decode, no copy) and then passed by reference."""

import json
import re
from collections.abc import Mapping
from typing import Any

from shared.content import (
    DocumentPart,
    ImagePart,
    RawPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from shared.models import WireFormat
from shared.wire._common import invalid, optional_bool, optional_str, require_object, require_str

__all__ = [
    "ANTHROPIC",
    "Part",
    "compact_json",
    "parse_block",
    "parse_cache_control",
    "parse_text_blocks",
    "render_part",
    "render_text",
    "tool_input",
]

JSON = Mapping[str, object]
Part = TextPart | ImagePart | DocumentPart | ToolCallPart | ToolResultPart | ThinkingPart | RawPart
ANTHROPIC = WireFormat.ANTHROPIC.value

BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
"""The standard base64 alphabet with padding: checked over the whole string without copying it."""

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def compact_json(value: object) -> str:
    """A tool call's input as the JSON text the model carries (`ToolCallPart.arguments`), serialised once."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_input(arguments: str) -> dict[str, Any] | None:
    """A tool call's JSON arguments as Anthropic's `input` object, or None when they are not a JSON object
    (a model of another provider can write broken JSON; the caller decides what that means)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- reading ----------------------------------------------------------------------------------------


def parse_cache_control(block: JSON, field: str) -> dict[str, Any] | None:
    value = block.get("cache_control")
    if value is None:
        return None
    control = require_object(value, f"{field}.cache_control")
    if not isinstance(control.get("type"), str):
        raise invalid(f"{field}.cache_control.type", "is required and must be a string")
    return dict(control)


def parse_text_blocks(value: object, field: str) -> list[TextPart]:
    """`system` or a mid-conversation system message: a string or an array of text blocks."""
    if isinstance(value, str):
        return [TextPart(text=value)]
    if not isinstance(value, list):
        raise invalid(field, "must be a string or an array of text blocks")
    parts: list[TextPart] = []
    for index, item in enumerate(value):
        block = require_object(item, f"{field}[{index}]")
        if block.get("type") != "text":
            raise invalid(f"{field}[{index}].type", f"must be 'text' (got {block.get('type')!r})")
        parts.append(_text(block, f"{field}[{index}]"))
    return parts


def parse_block(value: object, field: str) -> Part:
    """One content block of a message (client history or provider answer)."""
    block = require_object(value, field)
    kind = block.get("type")
    if not isinstance(kind, str) or not kind:
        raise invalid(f"{field}.type", "is required and must be a string")
    reader = READERS.get(kind)
    return reader(block, field) if reader is not None else RawPart(source=ANTHROPIC, block=dict(block))


def _text(block: JSON, field: str) -> TextPart:
    text = block.get("text")
    if not isinstance(text, str):
        raise invalid(f"{field}.text", "is required and must be a string")
    citations = block.get("citations")
    if citations is not None and not (isinstance(citations, list) and all(isinstance(c, Mapping) for c in citations)):
        raise invalid(f"{field}.citations", "must be an array of objects")
    return TextPart(text=text, cache_control=parse_cache_control(block, field),
                    citations=[dict(c) for c in citations] if citations is not None else None)


def _source(block: JSON, field: str) -> tuple[JSON, str]:
    source = require_object(block.get("source"), f"{field}.source")
    kind = source.get("type")
    if not isinstance(kind, str):
        raise invalid(f"{field}.source.type", "is required and must be a string")
    return source, kind


def _base64(source: JSON, field: str) -> str:
    data = source.get("data")
    if not isinstance(data, str) or not data or len(data) % 4 or BASE64.fullmatch(data) is None:
        raise invalid(f"{field}.source.data", "must be non-empty standard base64 (no data: prefix)")
    return data


def _image(block: JSON, field: str) -> Part:
    source, kind = _source(block, field)
    control = parse_cache_control(block, field)
    if kind == "base64":
        media_type = source.get("media_type")
        if media_type not in IMAGE_TYPES:
            raise invalid(f"{field}.source.media_type", f"must be one of {sorted(IMAGE_TYPES)}")
        return ImagePart(data=_base64(source, field), media_type=str(media_type), cache_control=control)
    if kind == "url":
        return ImagePart(url=require_str(source, "url", f"{field}.source.url"), cache_control=control)
    if kind == "file":
        require_str(source, "file_id", f"{field}.source.file_id")
        return RawPart(source=ANTHROPIC, block=dict(block))
    raise invalid(f"{field}.source.type", "must be 'base64', 'url' or 'file'")


def _document(block: JSON, field: str) -> Part:
    source, kind = _source(block, field)
    citations = block.get("citations")
    common: dict[str, Any] = {
        "title": optional_str(block, "title", f"{field}.title"),
        "context": optional_str(block, "context", f"{field}.context"),
        "citations": dict(require_object(citations, f"{field}.citations")) if citations is not None else None,
        "cache_control": parse_cache_control(block, field),
    }
    if kind == "base64":
        media_type = require_str(source, "media_type", f"{field}.source.media_type")
        return DocumentPart(media_type=media_type, data=_base64(source, field), **common)
    if kind == "text":
        text = source.get("data")
        if not isinstance(text, str):
            raise invalid(f"{field}.source.data", "is required and must be a string")
        media_type = optional_str(source, "media_type", f"{field}.source.media_type") or "text/plain"
        return DocumentPart(media_type=media_type, text=text, **common)
    if kind == "url":
        return DocumentPart(url=require_str(source, "url", f"{field}.source.url"), **common)
    if kind == "file":
        return DocumentPart(file_id=require_str(source, "file_id", f"{field}.source.file_id"), **common)
    if kind == "content":
        return RawPart(source=ANTHROPIC, block=dict(block))  # a document made of content blocks
    raise invalid(f"{field}.source.type", "must be 'base64', 'text', 'url', 'file' or 'content'")


def _tool_use(block: JSON, field: str) -> Part:
    arguments = block.get("input", {})
    if not isinstance(arguments, Mapping):
        raise invalid(f"{field}.input", "must be a JSON object")
    caller = block.get("caller")
    plain = caller is None or (isinstance(caller, Mapping) and caller.get("type") == "direct")
    unmodelled = {key for key, value in block.items() if value is not None} - {"type", "id", "name", "input",
                                                                               "cache_control", "caller"}
    if not plain or unmodelled:
        return RawPart(source=ANTHROPIC, block=dict(block))  # a call made by a server tool (code execution)
    return ToolCallPart(id=require_str(block, "id", f"{field}.id"), name=require_str(block, "name", f"{field}.name"),
                        arguments=compact_json(arguments), cache_control=parse_cache_control(block, field))


def _tool_result(block: JSON, field: str) -> Part:
    tool_call_id = require_str(block, "tool_use_id", f"{field}.tool_use_id")
    is_error = optional_bool(block, "is_error", f"{field}.is_error")
    control = parse_cache_control(block, field)
    content = block.get("content")
    if content is None:
        items: list[TextPart | ImagePart | DocumentPart] = []
    elif isinstance(content, str):
        items = [TextPart(text=content)]
    elif isinstance(content, list):
        parsed = [parse_block(item, f"{field}.content[{index}]") for index, item in enumerate(content)]
        if not all(isinstance(part, TextPart | ImagePart | DocumentPart) for part in parsed):
            return RawPart(source=ANTHROPIC, block=dict(block))  # e.g. search_result or tool_reference blocks
        items = [part for part in parsed if isinstance(part, TextPart | ImagePart | DocumentPart)]
    else:
        raise invalid(f"{field}.content", "must be a string or an array of content blocks")
    return ToolResultPart(tool_call_id=tool_call_id, content=items, is_error=is_error, cache_control=control)


def _thinking(block: JSON, field: str) -> ThinkingPart:
    text = block.get("thinking")
    if not isinstance(text, str):
        raise invalid(f"{field}.thinking", "is required and must be a string")
    signature = optional_str(block, "signature", f"{field}.signature")
    return ThinkingPart(text=text, signature=signature, provider=ANTHROPIC)


def _redacted(block: JSON, field: str) -> ThinkingPart:
    return ThinkingPart(redacted=require_str(block, "data", f"{field}.data"), provider=ANTHROPIC)


READERS = {
    "text": _text,
    "image": _image,
    "document": _document,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
    "thinking": _thinking,
    "redacted_thinking": _redacted,
}


# --- rendering --------------------------------------------------------------------------------------


def _with_cache(block: dict[str, Any], control: dict[str, Any] | None) -> dict[str, Any]:
    if control is not None:
        block["cache_control"] = control
    return block


def render_text(part: TextPart) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.text}
    if part.citations is not None:
        block["citations"] = part.citations
    return _with_cache(block, part.cache_control)


def _render_image(part: ImagePart) -> dict[str, Any]:
    """Base64 stays base64 (the client's string, by reference); a URL stays a URL (Anthropic fetches it)."""
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data}
    else:
        source = {"type": "url", "url": part.url or ""}
    return _with_cache({"type": "image", "source": source}, part.cache_control)


def _render_document(part: DocumentPart) -> dict[str, Any]:
    if part.data is not None:
        source: dict[str, Any] = {"type": "base64", "media_type": part.media_type or "application/pdf",
                                  "data": part.data}
    elif part.text is not None:
        source = {"type": "text", "media_type": part.media_type or "text/plain", "data": part.text}
    elif part.file_id is not None:
        source = {"type": "file", "file_id": part.file_id}
    else:
        source = {"type": "url", "url": part.url or ""}
    block: dict[str, Any] = {"type": "document", "source": source}
    title = part.title or part.filename  # an OpenAI file's name is the nearest thing to a title
    for key, value in (("title", title), ("context", part.context), ("citations", part.citations)):
        if value is not None:
            block[key] = value
    return _with_cache(block, part.cache_control)


def _render_tool_result(part: ToolResultPart) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.tool_call_id}
    content = part.content
    if len(content) == 1 and isinstance(content[0], TextPart) and content[0] == TextPart(text=content[0].text):
        block["content"] = content[0].text
    elif content:
        block["content"] = [render_part(item) for item in content]
    if part.is_error:
        block["is_error"] = True
    return _with_cache(block, part.cache_control)


def render_part(part: Part) -> dict[str, Any]:
    """One part as an Anthropic block. Callers filter what Anthropic cannot take (audio, other providers'
    thinking) first; a ToolCallPart's arguments must already be known to be a JSON object."""
    if isinstance(part, TextPart):
        return render_text(part)
    if isinstance(part, ImagePart):
        return _render_image(part)
    if isinstance(part, DocumentPart):
        return _render_document(part)
    if isinstance(part, ToolResultPart):
        return _render_tool_result(part)
    if isinstance(part, ToolCallPart):
        block = {"type": "tool_use", "id": part.id, "name": part.name, "input": tool_input(part.arguments) or {}}
        return _with_cache(block, part.cache_control)
    if isinstance(part, ThinkingPart):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    return dict(part.block)
