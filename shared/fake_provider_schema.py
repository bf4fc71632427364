"""Deterministic example values generated from a JSON Schema: the fake provider's tool-call arguments and
structured (`json_schema`) answers. The value is valid against the schema for the subset real clients send
(types, enum/const, required properties, arrays, $ref/$defs, anyOf/oneOf/allOf, numeric and length bounds),
so a client that validates what it gets back (pydantic, openai-agents, LangChain) accepts it."""

from collections.abc import Mapping
from typing import Any

__all__ = ["example_value"]

_MAX_DEPTH = 12
_MAX_ITEMS = 100  # a schema asking for more items than this gets an answer it rejects, not a huge one
_DEFAULT_STRING = "example"


def example_value(schema: object, *, name: str = "") -> Any:
    """A value valid against `schema` (a JSON Schema object); the same schema always gives the same value.
    `name` is the property the value is for: strings are built from it, so arguments read naturally."""
    root = schema if isinstance(schema, Mapping) else {}
    return _value(root, root, name, 0)


def _value(schema: Mapping[str, Any], root: Mapping[str, Any], name: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    schema = _resolved(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = [option for option in schema.get(key) or [] if isinstance(option, Mapping)]
        if options:
            chosen = next((o for o in options if _resolved(o, root).get("type") != "null"), options[0])
            return _value(chosen, root, name, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, Mapping):
                merged.update(_resolved(part, root))
        return _value(merged, root, name, depth + 1)
    return _typed(schema, root, name, depth)


def _typed(schema: Mapping[str, Any], root: Mapping[str, Any], name: str, depth: int) -> Any:
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, name, depth)
    if kind == "string":
        return _string(schema, name)
    if kind == "integer":
        return _number(schema, 1, integer=True)
    if kind == "number":
        return _number(schema, 1.5, integer=False)
    if kind == "boolean":
        return True
    return None


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "null" if schema.get("type") == "null" else "string"


def _resolved(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local `$ref` (`#/$defs/X`, `#/definitions/X`); siblings of the ref override it."""
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < _MAX_DEPTH:
        target: Any = root
        for step in schema["$ref"].lstrip("#").strip("/").split("/"):
            target = target.get(step) if isinstance(target, Mapping) and step else target
        siblings = {key: value for key, value in schema.items() if key != "$ref"}
        schema = {**(target if isinstance(target, Mapping) else {}), **siblings}
        seen += 1
    return schema


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    properties = _mapping(schema.get("properties"))
    listed = schema.get("required")
    required = [key for key in listed if isinstance(key, str)] if isinstance(listed, list) else []
    return {key: _value(_mapping(properties.get(key)), root, key, depth + 1) for key in required}


def _array(schema: Mapping[str, Any], root: Mapping[str, Any], name: str, depth: int) -> list[Any]:
    items = _mapping(schema.get("items"))
    minimum = schema.get("minItems")
    count = min(_MAX_ITEMS, max(1, minimum if isinstance(minimum, int) else 1))
    maximum = schema.get("maxItems")
    if isinstance(maximum, int):
        count = min(count, maximum)
    return [_value(items, root, name, depth + 1) for _ in range(count)]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _string(schema: Mapping[str, Any], name: str) -> str:
    text = {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "email": "user@example.com",
            "uri": "https://example.com/", "uuid": "00000000-0000-4000-8000-000000000000"}.get(
        str(schema.get("format")), f"{name} {_DEFAULT_STRING}".strip() if name else _DEFAULT_STRING)
    minimum, maximum = schema.get("minLength"), schema.get("maxLength")
    if isinstance(minimum, int) and len(text) < minimum <= _MAX_ITEMS * 100:
        text = text + "x" * (minimum - len(text))
    if isinstance(maximum, int) and len(text) > maximum:
        text = text[:maximum]
    return text


def _number(schema: Mapping[str, Any], fallback: float, *, integer: bool) -> float | int:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = fallback
    if isinstance(low, int | float) and not isinstance(low, bool):
        value = max(value, low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0))
    if isinstance(high, int | float) and not isinstance(high, bool):
        value = min(value, high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0))
    return int(value) if integer else float(value)
