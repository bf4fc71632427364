"""The fake provider's pure helpers, without a server: the directives read from the model name, the retry
headers, the reply words, and the range checks of its config."""

import pytest

from shared.fake_provider import FakeProviderConfig
from shared.fake_provider_script import parse_directives, reply_words, retry_headers


def test_parse_directives_reads_every_directive_from_the_model_name() -> None:
    directives = parse_directives("gpt-fail-429-retry-after-0.25-slow-1500-cut-after-3")
    assert directives.fail_status == 429
    assert directives.retry_after_s == 0.25
    assert directives.slow_ms == 1500
    assert directives.cut_after == 3
    assert parse_directives("gpt-4o") == parse_directives("plain")
    assert parse_directives("fail-200").fail_status is None


def test_retry_headers_default_to_one_second_only_for_429() -> None:
    assert retry_headers(429, None) == {"retry-after": "1", "retry-after-ms": "1000"}
    assert retry_headers(503, None) == {}
    assert retry_headers(503, 2.5) == {"retry-after": "2.5", "retry-after-ms": "2500"}


def test_reply_words_truncate_to_max_tokens_even_inside_the_prefix() -> None:
    assert reply_words("a b", 6, None) == (("Fake", "reply", "to:", "a", "b", "tok1"), False)
    assert reply_words("a b", 6, 2) == (("Fake", "reply"), True)
    assert reply_words("a b", 6, 6) == (("Fake", "reply", "to:", "a", "b", "tok1"), False)


def test_config_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="fail_rate"):
        FakeProviderConfig(fail_rate=1.5)
    with pytest.raises(ValueError, match="fail_models"):
        FakeProviderConfig(fail_models={"m": 200})
