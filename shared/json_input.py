"""Strict decoding of a client's JSON body, for every route that reads one (completions, jobs, admin). Raises
only `InvalidRequest`, naming the field, for what no backing service or provider can take: a lone UTF-16
surrogate (half an emoji: not Unicode, so no UTF-8 encoder, hence no Redis write, job record or provider
call, accepts it), an integer outside the signed 64-bit range (Python's int() refuses past 4,300 digits; Lua,
Redis and PostgreSQL overflow long before) and a non-finite number (`NaN`, `Infinity`, `1e400`). Runs before
anything is admitted, stored or hashed, so such input never reaches a step that could fail after admission."""

import json
import math
import re
from typing import TypeVar

from shared.errors import InvalidRequest

__all__ = ["INT64_MAX", "INT64_MIN", "escape_text", "find_problem", "loads_strict"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A sign and 19 digits hold any int64: longer literals are out of range without converting them (a literal
# of more than 4,300 digits would make int() raise).
MAX_INT_LITERAL = 20
_SURROGATE = re.compile("[\ud800-\udfff]")
_T = TypeVar("_T")


class _Refused:
    """Left by the decoder in place of a number it will not convert; the walk names its field."""

    def __init__(self, literal: str, problem: str) -> None:
        self.literal = literal[:24] + ("..." if len(literal) > 24 else "")
        self.problem = problem


def loads_strict(body: bytes | str) -> object:
    """The decoded JSON value, or InvalidRequest (malformed JSON, or a value refused as described above)."""
    refusals = 0

    def noted(result: _T) -> _T:
        nonlocal refusals
        refusals += isinstance(result, _Refused)
        return result

    try:
        value = json.loads(body, parse_int=lambda s: noted(_parse_int(s)), parse_float=lambda s: noted(_parse_float(s)),
                           parse_constant=lambda s: noted(_parse_constant(s)))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidRequest(f"Malformed JSON body: {escape_text(str(exc))}") from exc
    if refusals or _may_hold_surrogates(body):
        problem = find_problem(value)
        if problem is not None:
            raise InvalidRequest(problem)
    return value


def _may_hold_surrogates(body: bytes | str) -> bool:
    """Whether the decoded text can contain a lone surrogate, decided on the raw body without walking it: in
    UTF-8 JSON one comes only from a `\\u` escape or the bytes of an encoded surrogate (0xED 0xA0-0xBF, which
    json decodes with surrogatepass). A body without either (base64 images of several MB, plain ASCII) skips
    the walk, which costs a regex pass over every string."""
    if isinstance(body, str) or b"\x00" in body[:4]:  # text, or UTF-16/32: walk it
        return True
    # One-byte searches first (memchr: a 6 MB base64 image in well under a millisecond); a two-byte needle
    # is searched far slower, so only once a backslash is known to be there.
    return b"\xed" in body or (b"\\" in body and b"\\u" in body)


def find_problem(value: object) -> str | None:
    """The first refused value in document order, as a message naming its field; None if there is none.
    Iterative, so a body nested as deep as the decoder allows cannot exhaust the stack here."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return _surrogate_problem(path or "body", item)
        elif isinstance(item, dict):
            for key in item:
                if _SURROGATE.search(key):
                    return _surrogate_problem(_field(path, key), key, "field name")
            stack.extend((child, _field(path, key)) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((item[index], f"{path}[{index}]") for index in reversed(range(len(item))))
        elif isinstance(item, _Refused):
            return f"'{path or 'body'}' {item.problem} (got {item.literal})"
    return None


def escape_text(text: str) -> str:
    """`text` with lone surrogates written as `\\udXXX` escapes, so it can be encoded (e.g. in an error message)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if _SURROGATE.search(text) else text


def _parse_int(literal: str) -> int | _Refused:
    value = int(literal) if len(literal) <= MAX_INT_LITERAL else None
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        return _Refused(literal, "is an integer out of range (-2^63 to 2^63-1)")
    return value


def _parse_float(literal: str) -> float | _Refused:
    value = float(literal)
    return value if math.isfinite(value) else _Refused(literal, "must be a finite number")


def _parse_constant(literal: str) -> _Refused:
    return _Refused(literal, "must be a finite number (NaN and Infinity are not JSON)")


def _field(path: str, key: str) -> str:
    name = escape_text(key)
    return f"{path}.{name}" if path else name


def _surrogate_problem(field: str, text: str, what: str = "text") -> str:
    match = _SURROGATE.search(text)
    position = match.start() if match else 0
    return (f"'{field}' has a lone UTF-16 surrogate (\\u{ord(text[position]):04x} at character {position}) in its "
            f"{what}: it is not valid Unicode; send whole characters (an emoji as both halves of its pair)")
