"""shared/wire/anthropic_count.py towards Anthropic: the `messages.count_tokens` arguments are the Messages
rendering less the limit, with fields the SDK method does not take moved to `extra_body`; a broken answer is
an upstream failure."""

import pytest

from shared.errors import UnsupportedParameter, UpstreamUnavailable
from shared.wire.anthropic_count import parse_count, parse_count_request, render_count, render_count_request

BODY = {"model": "public", "messages": [{"role": "user", "content": "hi"}]}


def test_render_count_request_has_no_limit_and_the_target_model() -> None:
    kwargs = render_count_request(parse_count_request({**BODY, "system": "terse"}), "claude-x")
    assert kwargs == {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "system": "terse"}


def test_render_count_request_moves_unknown_fields_to_extra_body() -> None:
    body = {**BODY, "context_management": {"edits": []}, "container": "c1"}
    kwargs = render_count_request(parse_count_request(body), "claude-x")
    assert kwargs["extra_body"] == {"context_management": {"edits": []}, "container": "c1"}
    assert "container" not in kwargs


def test_render_count_request_keeps_betas_as_a_header() -> None:
    chat = parse_count_request(BODY, {"anthropic-beta": "token-counting-2024-11-01"})
    assert render_count_request(chat, "claude-x")["extra_headers"] == {"anthropic-beta": "token-counting-2024-11-01"}


def test_render_count_request_refuses_what_anthropic_cannot_take() -> None:
    chat = parse_count_request(BODY).model_copy(update={"seed": 3})  # as an OpenAI client's request could carry
    with pytest.raises(UnsupportedParameter, match="seed"):
        render_count_request(chat, "claude-x")


@pytest.mark.parametrize("answer", [{}, {"input_tokens": "12"}, {"input_tokens": -1}, {"input_tokens": True}])
def test_parse_count_refuses_a_broken_answer(answer: dict[str, object]) -> None:
    with pytest.raises(UpstreamUnavailable, match="input_tokens"):
        parse_count(answer, "anthropic")


def test_parse_and_render_count() -> None:
    assert parse_count({"input_tokens": 12}, "anthropic") == 12
    assert render_count(12) == {"input_tokens": 12}
