"""`shared.json_input`: strict decoding of client JSON. Every refusal is an InvalidRequest naming the field;
nothing else ever escapes (Python's json raises ValueError on a 4,301-digit integer, and happily returns lone
surrogates, NaN and infinities that fail later, after admission, as 500s)."""

import json

import pytest

from shared.errors import InvalidRequest
from shared.json_input import INT64_MAX, INT64_MIN, escape_text, loads_strict

HUGE = "1" + "0" * 5000


@pytest.mark.parametrize(("body", "field"), [
    ('{"max_tokens": ' + HUGE + "}", "max_tokens"),
    ('{"a": {"b": [1, -' + HUGE + "]}}", "a.b[1]"),
    ('{"seed": 9223372036854775808}', "seed"),
    ('{"seed": -9223372036854775809}', "seed"),
    ('{"temperature": 1e400}', "temperature"),
    ('{"temperature": -1e400}', "temperature"),
    ('{"top_p": NaN}', "top_p"),
    ('{"x": [Infinity]}', "x[0]"),
    ('{"x": -Infinity}', "x"),
    ('{"messages": [{"role": "user", "content": "x\\ud800y"}]}', "messages[0].content"),
    ('{"messages": [{"content": [{"type": "text", "text": "\\udfff"}]}]}', "messages[0].content[0].text"),
    ('{"metadata": {"\\ud83d": "half an emoji as a key"}}', "metadata.\\ud83d"),
    ('"\\ud800"', "body"),
])
def test_loads_strict_refuses_and_names_the_field(body: str, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        loads_strict(body)
    assert f"'{field}'" in caught.value.message
    caught.value.message.encode()  # the message itself is valid UTF-8, whatever the input


def test_loads_strict_refuses_raw_surrogate_bytes() -> None:
    """UTF-8-encoded surrogates (ED A0 80) are decoded by json with 'surrogatepass': the same lone surrogate."""
    with pytest.raises(InvalidRequest, match="'stop\\[0\\]'"):
        loads_strict(b'{"stop": ["a\xed\xa0\x80"]}')


def test_loads_strict_names_the_first_problem_in_document_order() -> None:
    with pytest.raises(InvalidRequest, match="'a'"):
        loads_strict('{"a": NaN, "b": NaN}')


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe\xff", b"[" * 100_000 + b"]" * 100_000])
def test_loads_strict_malformed_json_is_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="Malformed JSON"):
        loads_strict(body)


def test_loads_strict_keeps_valid_values() -> None:
    body = {"n": [INT64_MIN, INT64_MAX, 0, -1], "f": [1e308, -2.5e-300, 0.0], "s": "emoji \U0001f600 é \u0661\u0662",
            "b": [True, False, None], "nested": {"deep": [[{"k": "v"}]]}}
    assert loads_strict(json.dumps(body)) == body
    assert loads_strict(json.dumps(body, ensure_ascii=False).encode()) == body


def test_escape_text_makes_any_text_encodable() -> None:
    assert escape_text("ok é") == "ok é"
    assert escape_text("a\ud800b").encode() == b"a\\ud800b"


def test_the_walk_runs_only_when_the_raw_body_can_hold_a_refused_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of several MB of base64 (an image) is not walked string by string: only a `\\u` escape, the bytes
    of an encoded surrogate or a refused number make the walk necessary, and then it still names the field."""
    import shared.json_input as json_input

    walks: list[object] = []
    real = json_input.find_problem
    monkeypatch.setattr(json_input, "find_problem", lambda value: walks.append(value) or real(value))
    loads_strict(b'{"image": "' + b"QUJD" * 100_000 + b'", "n": 1, "text": "caf\xc3\xa9 \\n"}')
    assert walks == []
    for body, field in [(b'{"a": "x\\ud800"}', "'a'"), (b'{"a": ["\xed\xa0\x80"]}', "'a[0]'"),
                        (b'{"a": {"b": 1e400}}', "'a.b'")]:
        with pytest.raises(InvalidRequest) as refused:
            loads_strict(body)
        assert refused.value.message.startswith(field)
