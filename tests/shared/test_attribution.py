"""Attribution of a request (shared/attribution.py): where the end user and the tags come from, which wins,
and every limit refused with a 400 naming the header or field."""

import pytest

from shared.attribution import MAX_TAG_VALUE_CHARS, MAX_TAGS, MAX_USER_CHARS, build_attribution, parse_tags_header
from shared.errors import InvalidRequest


def test_attribution_takes_the_request_user_and_metadata() -> None:
    found = build_attribution({}, "key_1", "alice", {"team": "search"})
    assert (found.key_id, found.end_user, found.tags) == ("key_1", "alice", {"team": "search"})


def test_attribution_header_user_wins_over_the_request_user() -> None:
    assert build_attribution({"x-gateway-user": "bob"}, None, "alice", None).end_user == "bob"


def test_attribution_header_tags_win_over_metadata_of_the_same_key() -> None:
    found = build_attribution({"x-gateway-tags": "team=ads, env=prod"}, None, None, {"team": "search", "a": "b"})
    assert found.tags == {"team": "ads", "env": "prod", "a": "b"}


def test_attribution_without_anything_is_empty() -> None:
    found = build_attribution({}, None, None, None)
    assert (found.key_id, found.end_user, found.tags) == (None, None, {})


@pytest.mark.parametrize("raw", ["team", "=x", "team=", "te am=x", "a=1,,b=2", "a=1,a=2", "k" * 65 + "=v"])
def test_tags_header_refuses_malformed_pairs(raw: str) -> None:
    with pytest.raises(InvalidRequest, match="x-gateway-tags") as caught:
        parse_tags_header(raw)
    assert caught.value.status == 400 and caught.value.code == "invalid_tags"


def test_tags_header_refuses_more_than_the_limit() -> None:
    raw = ",".join(f"t{i}=v" for i in range(MAX_TAGS + 1))
    with pytest.raises(InvalidRequest, match=f"at most {MAX_TAGS}"):
        parse_tags_header(raw)


def test_tags_header_refuses_a_value_over_the_limit_instead_of_truncating() -> None:
    with pytest.raises(InvalidRequest, match="x-gateway-tags: the value of 'team'"):
        parse_tags_header("team=" + "v" * (MAX_TAG_VALUE_CHARS + 1))


def test_attribution_refuses_header_and_metadata_tags_over_the_limit_together() -> None:
    metadata = {f"m{i}": "v" for i in range(MAX_TAGS)}
    with pytest.raises(InvalidRequest, match="x-gateway-tags and metadata together"):
        build_attribution({"x-gateway-tags": "extra=1"}, None, None, metadata)


def test_attribution_refuses_a_metadata_key_over_the_limit() -> None:
    with pytest.raises(InvalidRequest, match="metadata: a key must be"):
        build_attribution({}, None, None, {"k" * 65: "v"})


@pytest.mark.parametrize(("headers", "user", "named"), [
    ({"x-gateway-user": "u" * (MAX_USER_CHARS + 1)}, None, "x-gateway-user"),
    ({}, "u" * (MAX_USER_CHARS + 1), "user"),
])
def test_attribution_refuses_an_end_user_over_the_limit(headers: dict[str, str], user: str | None,
                                                       named: str) -> None:
    with pytest.raises(InvalidRequest, match=f"^{named} has") as caught:
        build_attribution(headers, None, user, None)
    assert caught.value.code == "invalid_user"
