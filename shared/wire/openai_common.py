"""What the OpenAI Chat Completions modules share: the finish-reason vocabularies, the reasoning-model rule,
usage in both directions, and base64 data URLs (split once on the way in, built once on the way out); and the
request objects Chat Completions and Responses define alike (`metadata`, a function tool, a `json_schema`
output format), read once for both."""

import re
from collections.abc import Mapping

from shared.content import OutputFormat, Tool
from shared.models import FinishReason, Usage
from shared.wire._common import (
    get_int,
    get_mapping,
    invalid,
    nullable_bool,
    optional_str,
    require_object,
    require_str,
)

__all__ = [
    "CLIENT_FINISH_REASONS",
    "FINISH_REASONS",
    "MAX_STOP",
    "REASONING_MODEL_PREFIXES",
    "data_url",
    "parse_function_tool",
    "parse_json_schema_format",
    "parse_metadata",
    "parse_usage",
    "render_usage",
    "split_data_url",
    "split_file_data",
]

JSON = Mapping[str, object]

MAX_STOP = 4
"""OpenAI takes at most four stop sequences."""

# OpenAI's reasoning models refuse `max_tokens`; everything else (and OpenAI-compatible servers) takes it.
REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
}

# What an OpenAI client is told: its API has no stop-sequence, refusal or pause reasons (a refusal is the
# message's `refusal` text with finish `stop`, as OpenAI itself answers).
CLIENT_FINISH_REASONS: dict[FinishReason, str] = {
    **{reason: reason.value for reason in FinishReason},
    FinishReason.STOP_SEQUENCE: "stop", FinishReason.REFUSAL: "stop", FinishReason.PAUSE_TURN: "stop",
}

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")


def split_data_url(url: str, field: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a `data:<type>;base64,<data>` URL, None for any other URL.

    The payload is sliced off once (the one copy) and checked in one regex pass for the base64 alphabet and
    a length that is a multiple of 4, never decoded: a 5 MB image costs one scan, not a decode and re-encode."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url.partition(",")
    media_type, _, encoding = header[5:].partition(";")
    if not comma or encoding != "base64" or not _MEDIA_TYPE.fullmatch(media_type):
        raise invalid(field, "must be a URL or a 'data:<media type>;base64,<data>' URL")
    check_base64(data, field)
    return media_type, data


def split_file_data(file_data: str, field: str) -> tuple[str | None, str]:
    """(media type, base64 data) of a file part's `file_data` (Chat Completions and Responses alike): a data
    URL, or a bare base64 string kept as it came, with no media type."""
    inline = split_data_url(file_data, field)
    if inline is None:
        check_base64(file_data, field)
        return None, file_data
    return inline


def check_base64(data: str, field: str) -> None:
    """The cheap check: alphabet and padding in one pass, no decode, no copy."""
    if not data or len(data) % 4 or _BASE64.fullmatch(data) is None:
        raise invalid(field, "must be non-empty, padded standard base64")


def data_url(media_type: str | None, data: str) -> str:
    """The data URL OpenAI takes for an inline image or file, built once from the part's own string."""
    return f"data:{media_type or 'application/octet-stream'};base64,{data}"


def parse_usage(data: JSON) -> Usage:
    """OpenAI usage: cached prompt tokens are part of `prompt_tokens`, reasoning tokens of `completion_tokens`,
    as the Usage model counts them."""
    return Usage(
        prompt_tokens=get_int(data, "prompt_tokens"),
        completion_tokens=get_int(data, "completion_tokens"),
        cached_prompt_tokens=get_int(get_mapping(data, "prompt_tokens_details"), "cached_tokens"),
        reasoning_tokens=get_int(get_mapping(data, "completion_tokens_details"), "reasoning_tokens"),
    )


def render_usage(usage: Usage, raw: object = None) -> dict[str, object]:
    """The usage object a client sees. Anthropic cache writes are plain prompt tokens to an OpenAI client (its
    API has no field for them). `raw` is the provider's own usage object when it was OpenAI: its other details
    (audio, prediction tokens) are kept, the modelled figures win."""
    original = raw if isinstance(raw, Mapping) else {}
    prompt_details = {**get_mapping(original, "prompt_tokens_details"), "cached_tokens": usage.cached_prompt_tokens}
    completion_details = {**get_mapping(original, "completion_tokens_details"),
                          "reasoning_tokens": usage.reasoning_tokens}
    return {
        **original,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": completion_details,
    }


def parse_metadata(value: object) -> dict[str, str] | None:
    """Up to 16 keys of up to 64 characters with string values of up to 512, as OpenAI takes them."""
    if value is None:
        return None
    metadata = require_object(value, "metadata")
    if len(metadata) > MAX_METADATA_KEYS:
        raise invalid("metadata", f"must have at most {MAX_METADATA_KEYS} keys")
    for key, item in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise invalid("metadata", f"keys must be at most {MAX_METADATA_KEY} characters")
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE:
            raise invalid(f"metadata.{key}", f"must be a string of at most {MAX_METADATA_VALUE} characters")
    return {str(key): str(item) for key, item in metadata.items()}


def parse_function_tool(function: JSON, field: str) -> Tool:
    """A function's `name`, `description`, `parameters` and `strict`: Chat Completions' `function` object
    (or a legacy `functions` entry), a Responses function tool itself; `field` names it in errors."""
    parameters = function.get("parameters")
    if parameters is not None:
        parameters = dict(require_object(parameters, f"{field}.parameters"))
    strict = nullable_bool(function, "strict", f"{field}.strict")
    return Tool(name=require_str(function, "name", f"{field}.name"),
                description=optional_str(function, "description", f"{field}.description"),
                parameters=parameters, strict=strict)


def parse_json_schema_format(spec: JSON, field: str) -> OutputFormat:
    """A `json_schema` output format's `name`, `schema`, `description` and `strict`: Chat Completions'
    `response_format.json_schema`, Responses' `text.format`; `field` names it in errors."""
    schema = spec.get("schema")
    strict = nullable_bool(spec, "strict", f"{field}.strict")
    return OutputFormat(
        type="json_schema",
        name=require_str(spec, "name", f"{field}.name"),
        json_schema=None if schema is None else dict(require_object(schema, f"{field}.schema")),
        description=optional_str(spec, "description", f"{field}.description"),
        strict=strict,
    )
