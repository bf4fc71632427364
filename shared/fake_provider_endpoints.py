"""The fake provider's non-chat OpenAI endpoints: `POST /v1/embeddings` (deterministic unit vectors seeded by a
hash of each input, `dimensions` long, float or base64 little-endian float32; usage = the input's tokens) and
`POST /v1/completions` (legacy text completions: the fake's reply words to the prompt, `echo`, `n` choices per
prompt, `logprobs`, plain or streamed as `text_completion` chunks). Used only by shared.fake_provider."""

import base64
import hashlib
import math
import random
import struct
import time
import uuid
from typing import Protocol

from shared.fake_provider_formats import JSON, Problem, sse_data
from shared.fake_provider_script import count_words, reply_words

__all__ = ["DEFAULT_DIMENSIONS", "EMBEDDINGS", "TEXT_COMPLETIONS", "FakeEndpoint"]

DEFAULT_DIMENSIONS = 1536  # text-embedding-3-small's
DEFAULT_MAX_TOKENS = 16  # OpenAI's for a legacy completion
TOKEN_LOGPROBS = (-0.1, -0.25, -0.5, -1.0, -2.0)


class FakeEndpoint(Protocol):
    def problem(self, body: JSON) -> Problem | None: ...
    def answer(self, body: JSON, token_count: int) -> JSON: ...
    def frames(self, body: JSON, token_count: int) -> list[str]: ...


class _Embeddings:
    def problem(self, body: JSON) -> Problem | None:
        items = _items(body.get("input"))
        if items is None:
            return "'input' must be a string, an array of strings or an array of token arrays.", "input"
        dimensions = body.get("dimensions")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
            return "'dimensions' must be a positive integer.", "dimensions"
        if body.get("encoding_format") not in (None, "float", "base64"):
            return "'encoding_format' must be 'float' or 'base64'.", "encoding_format"
        return None

    def answer(self, body: JSON, token_count: int) -> JSON:
        items = _items(body.get("input")) or []
        size = body.get("dimensions") or DEFAULT_DIMENSIONS
        as_base64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": index, "embedding": _encoded(_vector(item, size), as_base64)}
                for index, item in enumerate(items)]
        tokens = sum(_item_tokens(item) for item in items)
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def frames(self, body: JSON, token_count: int) -> list[str]:
        return [sse_data(self.answer(body, token_count)), "data: [DONE]\n\n"]


class _TextCompletions:
    def problem(self, body: JSON) -> Problem | None:
        if _items(body.get("prompt")) is None:
            return "'prompt' must be a string, an array of strings or an array of token arrays.", "prompt"
        for name, low, high in (("n", 1, 128), ("logprobs", 0, 5), ("max_tokens", 0, 2**31 - 1)):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or not low <= value <= high):
                return f"'{name}' must be an integer from {low} to {high}.", name
        return None

    def answer(self, body: JSON, token_count: int) -> JSON:
        choices = _choices(body, token_count)
        rendered = [{"text": c.text, "index": c.index, "logprobs": c.logprobs, "finish_reason": c.finish}
                    for c in choices]
        return {**_head(body), "choices": rendered, "usage": _usage(body, choices)}

    def frames(self, body: JSON, token_count: int) -> list[str]:
        """One chunk per word of each choice, a last chunk per choice with its finish reason, then usage."""
        head = _head(body)
        frames: list[str] = []
        choices = _choices(body, token_count)
        for choice in choices:
            for position, piece in enumerate(choice.pieces):
                logprobs = _logprobs(choice.pieces[position:position + 1], body.get("logprobs"), position)
                frames.append(sse_data({**head, "choices": [
                    {"text": piece, "index": choice.index, "logprobs": logprobs, "finish_reason": None}]}))
            frames.append(sse_data({**head, "choices": [
                {"text": "", "index": choice.index, "logprobs": None, "finish_reason": choice.finish}]}))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            frames.append(sse_data({**head, "choices": [], "usage": _usage(body, choices)}))
        return [*frames, "data: [DONE]\n\n"]


class _Choice:
    def __init__(self, index: int, pieces: list[str], finish: str, logprobs: JSON | None, generated: int) -> None:
        self.index, self.pieces, self.finish, self.logprobs, self.generated = index, pieces, finish, logprobs, generated

    @property
    def text(self) -> str:
        return "".join(self.pieces)


EMBEDDINGS: FakeEndpoint = _Embeddings()
TEXT_COMPLETIONS: FakeEndpoint = _TextCompletions()


def _items(value: object) -> list[str | list[int]] | None:
    """The inputs: a string, strings, one token array, or token arrays; None when malformed or empty."""
    if isinstance(value, str) and value:
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return [list(value)]
    if all(isinstance(item, str) and item for item in value):
        return list(value)
    if all(isinstance(item, list) and item and all(isinstance(t, int) for t in item) for item in value):
        return [list(item) for item in value]
    return None


def _item_tokens(item: str | list[int]) -> int:
    return count_words([item]) if isinstance(item, str) else len(item)


def _item_text(item: str | list[int]) -> str:
    return item if isinstance(item, str) else " ".join(f"t{token}" for token in item)


def _vector(item: str | list[int], size: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(repr(item).encode()).digest()[:8], "big")
    rng = random.Random(seed)  # nosec B311: a fake vector seeded by its input, not a secret
    values = [rng.uniform(-1.0, 1.0) for _ in range(size)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Rounded to float32, so a float answer and a decoded base64 one are the same numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]


def _encoded(vector: list[float], as_base64: bool) -> list[float] | str:
    if not as_base64:
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _head(body: JSON) -> JSON:
    return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
            "model": body["model"]}


def _choices(body: JSON, token_count: int) -> list[_Choice]:
    """`n` choices per prompt, indexed prompt by prompt; with `echo`, each text starts with its prompt."""
    n = body.get("n") or 1
    max_tokens = body.get("max_tokens")
    limit = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    choices: list[_Choice] = []
    for number, item in enumerate(_items(body.get("prompt")) or []):
        text = _item_text(item)
        words, truncated = reply_words(text, token_count, limit)
        pieces = [f" {word}" for word in words]
        if body.get("echo"):
            pieces = [text, *pieces]
        for copy in range(n):
            logprobs = _logprobs(pieces, body.get("logprobs"), 0)
            choices.append(_Choice(number * n + copy, pieces, "length" if truncated else "stop", logprobs,
                                   len(words)))
    return choices


def _logprobs(pieces: list[str], top: object, start: int) -> JSON | None:
    """OpenAI's legacy logprobs object for `pieces`, or None when the request did not ask (`logprobs` unset)."""
    if not isinstance(top, int) or isinstance(top, bool):
        return None
    values = [TOKEN_LOGPROBS[(start + i) % len(TOKEN_LOGPROBS)] for i in range(len(pieces))]
    offsets, at = [], 0
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    return {"tokens": pieces, "token_logprobs": values,
            "top_logprobs": [{piece: value} for piece, value in zip(pieces, values, strict=True)] if top else None,
            "text_offset": offsets}


def _usage(body: JSON, choices: list[_Choice]) -> JSON:
    prompt = sum(_item_tokens(item) for item in _items(body.get("prompt")) or [])
    suffix = body.get("suffix")
    prompt += count_words([suffix]) if isinstance(suffix, str) else 0
    generated = sum(choice.generated for choice in choices)
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}
