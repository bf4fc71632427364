"""What the fake provider answers and how it misbehaves: the deterministic reply words, word-based token
counting, and the model-name directives (fail-NNN, retry-after-N, slow-NNNN, cut-after-N, garbage-json,
garbage-shape, tokens-N). Used only by shared.fake_provider and its format helpers."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Directives",
    "content_text",
    "count_words",
    "parse_directives",
    "reply_words",
    "retry_headers",
]

# The look-behind keeps e.g. "nofail-500" from matching while allowing "gpt-fail-500" and "fail-500".
_FAIL = re.compile(r"(?<![a-z0-9])fail-(\d{3})(?!\d)", re.IGNORECASE)
_RETRY_AFTER = re.compile(r"(?<![a-z0-9])retry-after-(\d+(?:\.\d+)?)", re.IGNORECASE)
_SLOW = re.compile(r"(?<![a-z0-9])slow-(\d+)", re.IGNORECASE)
_CUT_AFTER = re.compile(r"(?<![a-z0-9])cut-after-(\d+)", re.IGNORECASE)
# A 200 whose body is not JSON (`garbage-json`) or JSON of the wrong shape (`garbage-shape`).
_GARBAGE = re.compile(r"(?<![a-z0-9])garbage-(json|shape)", re.IGNORECASE)
# An answer of N tokens (before max_tokens), whatever `--tokens` says: a model that writes long answers.
_TOKENS = re.compile(r"(?<![a-z0-9])tokens-(\d+)", re.IGNORECASE)

_REPLY_PREFIX = ("Fake", "reply", "to:")
_ECHOED_WORDS = 5
_DEFAULT_429_RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class Directives:
    """Behaviour requested through the model name."""

    fail_status: int | None = None
    retry_after_s: float | None = None
    slow_ms: int = 0
    cut_after: int | None = None
    garbage: str | None = None
    token_count: int | None = None


def _match(pattern: re.Pattern[str], model: str) -> str | None:
    found = pattern.search(model)
    return found.group(1) if found else None


def parse_directives(model: str) -> Directives:
    """Read the directives embedded in a model name; unknown text is ignored."""
    fail = _match(_FAIL, model)
    retry_after = _match(_RETRY_AFTER, model)
    slow = _match(_SLOW, model)
    cut_after = _match(_CUT_AFTER, model)
    tokens = _match(_TOKENS, model)
    fail_status = int(fail) if fail is not None else None
    return Directives(
        # Only error statuses make sense to inject; anything else would be a successful-looking failure.
        fail_status=fail_status if fail_status is not None and 400 <= fail_status <= 599 else None,
        retry_after_s=float(retry_after) if retry_after is not None else None,
        slow_ms=int(slow) if slow is not None else 0,
        cut_after=int(cut_after) if cut_after is not None else None,
        garbage=(_match(_GARBAGE, model) or "").lower() or None,
        token_count=int(tokens) if tokens is not None else None,
    )


def retry_headers(status: int, retry_after_s: float | None) -> dict[str, str]:
    """`retry-after` / `retry-after-ms` for a failure: always on 429, elsewhere only when asked for."""
    seconds = retry_after_s
    if seconds is None and status == 429:
        seconds = _DEFAULT_429_RETRY_AFTER_S
    if seconds is None:
        return {}
    return {"retry-after": f"{seconds:g}", "retry-after-ms": str(round(seconds * 1000))}


def content_text(content: Any) -> str:
    """The text of a message content: a plain string or a list of `{"type": "text", "text": ...}` blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [block for block in content if isinstance(block, str)]
    texts += [
        block["text"]
        for block in content
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
    return " ".join(texts)


def count_words(texts: Iterable[str]) -> int:
    """Tokens are whitespace-separated words."""
    return sum(len(text.split()) for text in texts)


def reply_words(user_text: str, token_count: int, max_tokens: int | None) -> tuple[tuple[str, ...], bool]:
    """The reply's words and whether `max_tokens` cut it short of `token_count`."""
    limit = token_count if max_tokens is None else min(token_count, max_tokens)
    prefix = [*_REPLY_PREFIX, *user_text.split()[:_ECHOED_WORDS]]
    filler = [f"tok{number}" for number in range(1, max(0, limit - len(prefix)) + 1)]
    return tuple([*prefix, *filler][:limit]), limit < token_count
