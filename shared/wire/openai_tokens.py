"""The input tokens OpenAI bills for a Chat Completions request, counted with tiktoken over the request as the
gateway renders it for OpenAI (`shared.wire.openai_outbound.render_request`), so what is counted is what would
be sent. Called by shared/token_count.py for `POST /v1/messages/count_tokens` on a route served by OpenAI.

OpenAI publishes no exact formula; this follows its cookbook ("How to count tokens with tiktoken") and its
vision guide, and is exact for plain text messages. Approximations (docs/API.md, Token counting):
- each message costs `TOKENS_PER_MESSAGE` plus its role, content and name (`TOKENS_PER_NAME` more for a name);
  every reply is primed with `REPLY_PRIMING_TOKENS`; a tool call costs its name, its arguments and
  `TOKENS_PER_TOOL_CALL`; a tool message's `tool_call_id` is not counted;
- function tools follow the cookbook's formula for gpt-4o (a name and description line per function, a
  `name:type:description` line per top-level property, enum values); a nested schema is counted as its JSON;
- a `json_schema` response format is counted as its JSON;
- images by OpenAI's published rules per model family (`IMAGE_RULES`): 512-px tiles after fitting 2048x2048
  and a 768-px shortest side, or 32-px patches capped at 1,536; the size is read from an inline image's
  header; an image by URL (never fetched by the API) or of an unknown format counts as `UNKNOWN_IMAGE_SIZE`,
  the size that costs the most tiles at high detail;
- files (PDF) and audio, which OpenAI bills by their decoded content, use the gateway's estimate
  (shared/estimate.py)."""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import tiktoken

from shared.content import AudioPart, DocumentPart
from shared.estimate import part_tokens
from shared.image_size import image_size_of_base64

__all__ = [
    "IMAGE_RULES",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOKENS_PER_TOOL_CALL",
    "UNKNOWN_IMAGE_SIZE",
    "ImageRule",
    "count_chat_input",
    "image_tokens",
]

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_TOOL_CALL = 3
REPLY_PRIMING_TOKENS = 3
# The cookbook's constants for gpt-4o and later (function start and end, properties, enums).
FUNCTION_INIT, PROPERTIES_INIT, PROPERTY_KEY, ENUM_INIT, ENUM_ITEM, FUNCTIONS_END = 7, 3, 3, -3, 3, 12
UNKNOWN_IMAGE_SIZE = (2048, 768)
TILE_PX, PATCH_PX, MAX_PATCHES = 512, 32, 1536


@dataclass(frozen=True)
class ImageRule:
    """Tiles: `base` tokens plus `tile` per 512-px tile (`base` alone at low detail). Patches: 32-px patches,
    at most 1,536, times `multiplier`."""

    base: int = 85
    tile: int = 170
    multiplier: float | None = None


IMAGE_RULES: tuple[tuple[str, ImageRule], ...] = (
    ("gpt-4.1-mini", ImageRule(multiplier=1.62)),
    ("gpt-4.1-nano", ImageRule(multiplier=2.46)),
    ("gpt-5-mini", ImageRule(multiplier=1.62)),
    ("gpt-5-nano", ImageRule(multiplier=2.46)),
    ("o4-mini", ImageRule(multiplier=1.72)),
    ("gpt-4o-mini", ImageRule(base=2833, tile=5667)),
    ("gpt-5", ImageRule(base=70, tile=140)),
    ("o1", ImageRule(base=75, tile=150)),
    ("o3", ImageRule(base=75, tile=150)),
    ("computer-use-preview", ImageRule(base=65, tile=129)),
)
"""Model-name prefixes, most specific first; any other model (gpt-4o, gpt-4.1, ...) takes `ImageRule()`."""


def count_chat_input(request: Mapping[str, object], encoding: tiktoken.Encoding, model: str) -> int:
    """Input tokens of `request`, the keyword arguments of `chat.completions.create` for `model`."""
    counter = _Counter(encoding, _image_rule(model))
    tokens = REPLY_PRIMING_TOKENS
    for message in _objects(request.get("messages")):
        tokens += counter.message(message)
    tools = _objects(request.get("tools"))
    if tools:
        tokens += sum(counter.function(tool.get("function")) for tool in tools) + FUNCTIONS_END
    response_format = request.get("response_format")
    if isinstance(response_format, Mapping) and isinstance(response_format.get("json_schema"), Mapping):
        tokens += counter.json(response_format["json_schema"])
    return tokens


def image_tokens(size: tuple[int, int], detail: str, rule: ImageRule) -> int:
    """One image's tokens under `rule`; `detail` "low" is the base cost on tile models."""
    width, height = size
    if rule.multiplier is not None:
        return math.ceil(_patches(width, height) * rule.multiplier)
    if detail == "low":
        return rule.base
    fit = min(1.0, 2048 / max(width, height))
    scale = fit * min(1.0, 768 / (min(width, height) * fit))
    tiles = math.ceil(width * scale / TILE_PX) * math.ceil(height * scale / TILE_PX)
    return rule.base + rule.tile * tiles


class _Counter:
    def __init__(self, encoding: tiktoken.Encoding, rule: ImageRule) -> None:
        self.encoding = encoding
        self.rule = rule

    def text(self, value: object) -> int:
        # disallowed_special=(): a prompt that contains "<|endoftext|>" is text to count, not an error.
        return len(self.encoding.encode(value, disallowed_special=())) if isinstance(value, str) else 0

    def json(self, value: object) -> int:
        return self.text(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def message(self, message: Mapping[str, object]) -> int:
        tokens = TOKENS_PER_MESSAGE + self.text(message.get("role")) + self.content(message.get("content"))
        if isinstance(message.get("name"), str):
            tokens += self.text(message["name"]) + TOKENS_PER_NAME
        tokens += self.text(message.get("refusal"))
        for call in _objects(message.get("tool_calls")):
            function = call.get("function")
            if isinstance(function, Mapping):
                tokens += self.text(function.get("name")) + self.text(function.get("arguments")) + TOKENS_PER_TOOL_CALL
        return tokens

    def content(self, content: object) -> int:
        if not isinstance(content, list):
            return self.text(content)
        return sum(self.part(part) for part in content if isinstance(part, Mapping))

    def part(self, part: Mapping[str, object]) -> int:
        kind = part.get("type")
        inner = part.get(kind) if isinstance(kind, str) else None
        if kind == "text":
            return self.text(part.get("text"))
        if kind == "image_url" and isinstance(inner, Mapping):
            return self.image(inner)
        if kind == "file" and isinstance(inner, Mapping):
            return _file_tokens(inner)
        if kind == "input_audio" and isinstance(inner, Mapping):
            return part_tokens(AudioPart(data=str(inner.get("data", "")), format=str(inner.get("format", ""))))
        return self.json(part)

    def image(self, image: Mapping[str, object]) -> int:
        url = image.get("url")
        size = None
        if isinstance(url, str) and url.startswith("data:") and "," in url:
            size = image_size_of_base64(url.partition(",")[2])
        detail = image.get("detail")
        return image_tokens(size or UNKNOWN_IMAGE_SIZE, detail if isinstance(detail, str) else "auto", self.rule)

    def function(self, function: object) -> int:
        """The cookbook's count of one function tool: its `name:description` line, then its properties."""
        if not isinstance(function, Mapping):
            return 0
        tokens = FUNCTION_INIT + self.text(f"{function.get('name', '')}:{_sentence(function.get('description'))}")
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        if not isinstance(properties, Mapping) or not properties:
            return tokens
        tokens += PROPERTIES_INIT
        for key, schema in properties.items():
            tokens += PROPERTY_KEY + self.property(str(key), schema if isinstance(schema, Mapping) else {})
        return tokens

    def property(self, key: str, schema: Mapping[str, object]) -> int:
        tokens = self.text(f"{key}:{schema.get('type', '')}:{_sentence(schema.get('description'))}")
        enum = schema.get("enum")
        if isinstance(enum, list):
            tokens += ENUM_INIT + sum(ENUM_ITEM + self.text(str(item)) for item in enum)
        nested = {name: schema[name] for name in ("properties", "items", "anyOf", "oneOf") if name in schema}
        return tokens + (self.json(nested) if nested else 0)


def _image_rule(model: str) -> ImageRule:
    return next((rule for prefix, rule in IMAGE_RULES if model.startswith(prefix)), ImageRule())


def _patches(width: int, height: int) -> int:
    """OpenAI's patch count: an image over 1,536 32-px patches is shrunk to fit, whole patches kept."""
    if math.ceil(width / PATCH_PX) * math.ceil(height / PATCH_PX) <= MAX_PATCHES:
        return math.ceil(width / PATCH_PX) * math.ceil(height / PATCH_PX)
    shrink = math.sqrt(PATCH_PX * PATCH_PX * MAX_PATCHES / (width * height))
    shrink *= min(math.floor(width * shrink / PATCH_PX) / (width * shrink / PATCH_PX),
                  math.floor(height * shrink / PATCH_PX) / (height * shrink / PATCH_PX))
    return min(MAX_PATCHES, math.ceil(width * shrink / PATCH_PX) * math.ceil(height * shrink / PATCH_PX))


def _file_tokens(file: Mapping[str, object]) -> int:
    data = file.get("file_data")
    if isinstance(data, str):
        media_type, _, payload = data.partition(";base64,") if data.startswith("data:") else ("", "", data)
        return part_tokens(DocumentPart(data=payload, media_type=media_type.removeprefix("data:") or None))
    return part_tokens(DocumentPart(file_id=str(file.get("file_id", ""))))


def _sentence(value: object) -> str:
    """The cookbook strips a description's final full stop."""
    return value.removesuffix(".") if isinstance(value, str) else ""


def _objects(value: object) -> list[Mapping[str, object]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
