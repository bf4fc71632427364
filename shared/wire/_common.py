"""Helpers shared by the wire modules: strict readers for untyped client JSON (every failure is an
`InvalidRequest` naming the field), lenient readers for provider JSON, and compact JSON for SSE data."""

import json
from collections.abc import Mapping
from typing import TypeVar

from pydantic import ValidationError

from shared.errors import InvalidRequest
from shared.models import ChatRequest, Usage, WireFormat

__all__ = [
    "CLIENT_NAMES",
    "INT64",
    "MAX_COUNT",
    "NumberBounds",
    "SSEEvent",
    "build_chat_request",
    "check_numbers",
    "client_name",
    "dumps",
    "get_int",
    "get_list",
    "get_mapping",
    "get_str",
    "invalid",
    "nullable_bool",
    "one_of",
    "optional_bool",
    "optional_int",
    "optional_number",
    "optional_str",
    "reject_present",
    "rename_param",
    "require_list",
    "require_object",
    "require_str",
    "string_list",
    "text_of",
    "usage_total",
]

SSEEvent = tuple[str | None, str]
"""One server-sent event: (event name or None for a bare `data:` line, data string)."""

JSON = Mapping[str, object]
NumberBounds = tuple[float, float, bool]
"""(lowest, highest, whether it must be an integer) of a numeric request field."""

MAX_COUNT = 2**31 - 1
"""The most tokens (or items) a request may ask for: far above any model's limit, and within the 32-bit
columns and the exact integers of the Lua scripts that count tokens."""
INT64 = (-(2**63), 2**63 - 1)


# The internal model's field names are OpenAI's where they differ; a parameter named to a client (refused,
# dropped, in the compatibility matrix) is named in the client's own format.
CLIENT_NAMES: dict[WireFormat, dict[str, str]] = {
    WireFormat.OPENAI: {"output_format": "response_format", "reasoning": "reasoning_effort"},
    WireFormat.ANTHROPIC: {"output_format": "output_format", "reasoning": "thinking", "stop": "stop_sequences",
                           "user": "metadata.user_id", "tool_choice": "tool_choice.type",
                           "parallel_tool_calls": "tool_choice.disable_parallel_tool_use"},
    # A Responses request is modelled in OpenAI's vocabulary (its `source` is OPENAI): its refusals are
    # renamed to these at its route (`rename_param`), and `x-gateway-drop-params` takes either name.
    WireFormat.RESPONSES: {"output_format": "text.format", "reasoning": "reasoning.effort",
                           "max_tokens": "max_output_tokens", "system": "instructions", "messages": "input"},
}


def client_name(field: str, source: WireFormat) -> str:
    """The name a client of `source` knows the internal model's `field` by."""
    return CLIENT_NAMES[source].get(field, field)


def rename_param(param: str, source: WireFormat, client: WireFormat) -> str:
    """A parameter named in `source`'s vocabulary (`response_format`) as a client of `client` knows it
    (`text.format`); a name neither renames is the same in both."""
    internal = next((name for name, shown in CLIENT_NAMES[source].items() if shown == param), param)
    return client_name(internal, client)


def invalid(field: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"'{field}' {problem}")


def dumps(value: object) -> str:
    """Compact JSON, as SSE data lines carry it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- strict readers for client requests -------------------------------------------------------------


def require_object(value: object, field: str) -> JSON:
    if not isinstance(value, Mapping):
        raise invalid(field, "must be a JSON object")
    return value


def require_str(data: JSON, key: str, field: str | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise invalid(field or key, "is required and must be a non-empty string")
    return value


def optional_str(data: JSON, key: str, field: str | None = None) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(field or key, "must be a string")
    return value


def optional_bool(data: JSON, key: str, field: str | None = None) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(field or key, "must be a boolean")
    return value


def nullable_bool(data: JSON, key: str, field: str | None = None) -> bool | None:
    """A boolean that stays None when absent, where absence and false differ upstream."""
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise invalid(field or key, "must be a boolean")
    return value


def optional_int(data: JSON, key: str, *, minimum: int = 1, maximum: int = MAX_COUNT,
                 field: str | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise invalid(field or key, f"must be an integer from {minimum} to {maximum}")
    return value


def check_numbers(data: JSON, bounds: Mapping[str, NumberBounds], prefix: str = "") -> None:
    """Range checks of numeric fields the gateway accepts but does not forward (yet): a value no provider
    would take is the client's error now, not a surprise later."""
    for key, (low, high, integer) in bounds.items():
        if integer:
            optional_int(data, key, minimum=int(low), maximum=int(high), field=f"{prefix}{key}")
        else:
            optional_number(data, key, low, high, field=f"{prefix}{key}")


def optional_number(data: JSON, key: str, low: float, high: float, field: str | None = None) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(field or key, f"must be a number between {low:g} and {high:g}")
    return float(value)


def require_list(data: JSON, key: str) -> list[object]:
    value = data.get(key)
    if not isinstance(value, list):
        raise invalid(key, "is required and must be an array")
    if not value:
        raise invalid(key, "must not be empty")
    return value


def reject_present(data: JSON, *keys: str, prefix: str = "") -> None:
    """Refuse features the gateway does not translate yet (an empty value counts as absent)."""
    for key in keys:
        if data.get(key):
            raise invalid(f"{prefix}{key}", "is not supported by this gateway yet")


def string_list(value: object, field: str, *, max_items: int | None = None) -> list[str]:
    """A string or an array of non-empty strings (None gives an empty list)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
        raise invalid(field, "must be a non-empty string or an array of non-empty strings")
    if max_items is not None and len(items) > max_items:
        raise invalid(field, f"must have at most {max_items} entries")
    return [str(item) for item in items]


def text_of(content: object, field: str) -> str:
    """Message content: a string, or a non-empty array of `{"type": "text", "text": ...}` parts
    (joined with newlines). Any other part type is refused as not supported."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise invalid(field, "must be a string or a non-empty array of text parts")
    texts: list[str] = []
    for index, item in enumerate(content):
        part = require_object(item, f"{field}[{index}]")
        kind = part.get("type")
        if kind != "text":
            raise invalid(f"{field}[{index}].type", f"{kind!r} is not supported (only 'text' content)")
        texts.append(_require_text(part, f"{field}[{index}].text"))
    return "\n".join(texts)


def _require_text(part: JSON, field: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise invalid(field, "must be a string")
    return text


def build_chat_request(**fields: object) -> ChatRequest:
    """Final validation by the model itself; anything it refuses becomes an InvalidRequest."""
    try:
        return ChatRequest.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "request"
        raise invalid(field, first["msg"]) from exc


# --- lenient readers for provider responses (already validated by the SDK) ---------------------------


def get_mapping(data: JSON, key: str) -> JSON:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def get_list(data: JSON, key: str) -> list[object]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def get_str(data: JSON, key: str, default: str = "") -> str:
    value = data.get(key)
    return value if isinstance(value, str) else default


def get_int(data: JSON, key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_total(usage: Usage) -> dict[str, object]:
    """OpenAI-style usage object; cached prompt tokens are part of `prompt_tokens`, as OpenAI counts them."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
    }


_Choice = TypeVar("_Choice", bound=str)


def one_of(value: object, choices: tuple[_Choice, ...]) -> _Choice | None:
    """`value` as the one of `choices` it equals (typed as that Literal), or None: `value in choices`, narrowed."""
    for choice in choices:
        if value == choice:
            return choice
    return None
