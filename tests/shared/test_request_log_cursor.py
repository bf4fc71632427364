"""The request log's cursor: only what the API returned is accepted; anything else is a 400 `invalid_cursor`,
never a 500 (the fuzz test found non-ASCII cursors crashing base64 decoding)."""

import base64

import pytest

from shared.db.request_log import _cursor_id, _encode_cursor
from shared.errors import InvalidRequest


def test_cursor_round_trips() -> None:
    assert _cursor_id(_encode_cursor(12345)) == 12345


@pytest.mark.parametrize("cursor", [
    "\u0661\u0662\u0663",  # Arabic-Indic digits: base64 refuses non-ASCII with a ValueError
    "\u0080", "%", "", "!!!!", base64.urlsafe_b64encode(b"rl:-1").decode(),
    base64.urlsafe_b64encode(b"rl:" + b"9" * 19).decode(),  # past int64: the database would fail on it
    base64.urlsafe_b64encode(b"xx:1").decode(), base64.urlsafe_b64encode("rl:\u0661".encode()).decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_foreign_cursors_are_invalid_requests(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        _cursor_id(cursor)
    assert raised.value.code == "invalid_cursor"
