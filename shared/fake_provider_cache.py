"""Prompt caching as the fake provider accounts it, so usage fields a gateway must carry and bill are there.

Anthropic: every block with `cache_control` (tools, system, message content) is a breakpoint; the prefix up
to it is remembered. The longest remembered breakpoint prefix is read from the cache
(`cache_read_input_tokens`), the rest up to the last breakpoint is written (`cache_creation_input_tokens`,
split by the last breakpoint's ttl into `ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`), and
`input_tokens` is what is left. OpenAI: automatic caching of every message but the last once it is at least
`OPENAI_MIN_CACHED_WORDS` words; a repeat reports them as `prompt_tokens_details.cached_tokens`.
Tokens are words, as everywhere in the fake provider."""

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.fake_provider_script import content_text

__all__ = ["OPENAI_MIN_CACHED_WORDS", "AnthropicCacheUsage", "PromptCache"]

OPENAI_MIN_CACHED_WORDS = 32
_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class AnthropicCacheUsage:
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0


class PromptCache:
    """Prefixes seen so far (digest -> nothing), oldest forgotten first."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()

    def clear(self) -> None:
        self._seen.clear()

    def _remember(self, digest: str) -> bool:
        """Whether `digest` was seen before; it is remembered from now on."""
        hit = digest in self._seen
        self._seen[digest] = None
        self._seen.move_to_end(digest)
        while len(self._seen) > _MAX_ENTRIES:
            self._seen.popitem(last=False)
        return hit

    def anthropic(self, body: Mapping[str, Any]) -> AnthropicCacheUsage:
        if not any(_cache_control(block) is not None for block, _ in _segments(body)):
            return AnthropicCacheUsage()  # the common case, without hashing the prompt
        breakpoints = list(_breakpoints(body))
        if not breakpoints:
            return AnthropicCacheUsage()
        hits = [self._remember(f"{body.get('model')}:{digest}") for digest, _, _ in breakpoints]
        read = max((words for (_, words, _), hit in zip(breakpoints, hits, strict=True) if hit), default=0)
        _, last_words, ttl = breakpoints[-1]
        written = max(0, last_words - read)
        return AnthropicCacheUsage(read=read, write_5m=0 if ttl == "1h" else written,
                                   write_1h=written if ttl == "1h" else 0)

    def openai(self, body: Mapping[str, Any]) -> int:
        messages = body["messages"][:-1]
        words = sum(len(content_text(m.get("content")).split()) for m in messages if isinstance(m, Mapping))
        if words < OPENAI_MIN_CACHED_WORDS:
            return 0
        digest = _digest(json.dumps([body.get("model"), body.get("tools"), messages], sort_keys=True))
        return words if self._remember(digest) else 0


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _segments(body: Mapping[str, Any]) -> Iterator[tuple[object, str]]:
    """(block, its text) in prefix order: tools, system, then each message's content blocks."""
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        yield tool, ""
    system = body.get("system")
    for block in system if isinstance(system, list) else [system] if system else []:
        yield block, content_text([block]) if isinstance(block, Mapping) else str(block)
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, Mapping) else None
        for block in content if isinstance(content, list) else [content]:
            text = content_text([block]) if isinstance(block, Mapping) else content_text(block)
            yield {"role": message.get("role"), "block": block}, text


def _breakpoints(body: Mapping[str, Any]) -> Iterator[tuple[str, int, str]]:
    """(digest of the prefix, its words, ttl) at each block carrying `cache_control`."""
    running = hashlib.sha256()
    words = 0
    for block, text in _segments(body):
        running.update(json.dumps(_unmarked(block), sort_keys=True).encode())
        words += len(text.split())
        control = _cache_control(block)
        if control is not None:
            ttl = control.get("ttl")
            yield running.copy().hexdigest(), words, ttl if isinstance(ttl, str) else "5m"


def _unmarked(block: object) -> object:
    """The block without its cache markers: moving a breakpoint does not change the prefix it ends."""
    if not isinstance(block, Mapping):
        return block
    return {key: _unmarked(value) for key, value in block.items() if key != "cache_control"}


def _cache_control(block: object) -> Mapping[str, Any] | None:
    inner = block.get("block", block) if isinstance(block, Mapping) else block
    control = inner.get("cache_control") if isinstance(inner, Mapping) else None
    return control if isinstance(control, Mapping) else None
