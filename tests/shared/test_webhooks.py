"""Webhook helpers: callback URL validation (400s), the signature a receiver verifies, which addresses
count as private, and the retry schedule."""

import random

import pytest

from shared.errors import InvalidRequest
from shared.webhooks import is_public_address, retry_delay_s, sign, validate_callback_url, verify_signature


@pytest.mark.parametrize("url", ["https://hooks.example.com/llm?x=1", "http://example.com:8080/", "http://10.0.0.5/h"])
def test_validate_callback_url_accepts_absolute_http_urls(url: str) -> None:
    assert validate_callback_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["", "ftp://example.com/x", "/relative/path", "example.com/hook", "http:///path",
                                 "https://user:pw@example.com/", "http://example.com:99999/", "http://exa mple.com/",
                                 "https://example.com/" + "a" * 2048, 42, None])
def test_validate_callback_url_rejects_bad_urls(url: object) -> None:
    with pytest.raises(InvalidRequest):
        validate_callback_url(url, allow_private=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1/h", "http://10.1.2.3/h", "http://169.254.169.254/latest",
                                 "http://[::1]/h", "http://[::ffff:192.168.1.1]/h", "http://0.0.0.0/"])
def test_validate_callback_url_rejects_literal_private_addresses_unless_allowed(url: str) -> None:
    with pytest.raises(InvalidRequest, match="private"):
        validate_callback_url(url, allow_private=False)
    assert validate_callback_url(url, allow_private=True) == url


def test_validate_callback_url_leaves_host_names_to_delivery_time() -> None:
    assert validate_callback_url("http://localhost:9/h", allow_private=False) == "http://localhost:9/h"


@pytest.mark.parametrize(("address", "public"), [("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False),
                                                 ("192.168.0.1", False), ("172.16.5.4", False), ("100.64.0.1", False),
                                                 ("169.254.169.254", False), ("fe80::1", False), ("fc00::1", False),
                                                 ("::ffff:10.0.0.1", False), ("224.0.0.1", False), ("::", False)])
def test_is_public_address_classifies(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_signature_verifies_and_detects_tampering_and_staleness() -> None:
    body = b'{"id":"job_1","status":"succeeded"}'
    header = sign("s3cret", body, timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature("s3cret", header, body, now=1_700_000_100)
    assert not verify_signature("other", header, body, now=1_700_000_100)
    assert not verify_signature("s3cret", header, body + b" ", now=1_700_000_100)
    assert not verify_signature("s3cret", header, body, now=1_700_001_000)  # older than the 300 s tolerance
    assert not verify_signature("s3cret", "v1=abc", body)


def test_retry_delay_grows_exponentially_with_jitter_and_cap() -> None:
    rng = random.Random(7)
    delays = [retry_delay_s(n, base_s=1.0, max_s=60.0, rng=rng) for n in range(1, 9)]
    for attempt, delay in enumerate(delays[:6], start=1):
        assert 0.8 * 2 ** (attempt - 1) <= delay <= 1.2 * 2 ** (attempt - 1)
    assert delays[-1] == 60.0
    assert retry_delay_s(1, base_s=1.0, max_s=60.0, retry_after_s=30, rng=rng) == 30
    assert retry_delay_s(1, base_s=1.0, max_s=60.0, retry_after_s=600, rng=rng) == 60.0
