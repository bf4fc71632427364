"""The fake provider's answer, independent of the wire format: ordered content blocks (thinking with its
signature, text, a refusal, a tool call), the finish reason and the usage. Built from the neutral request
view (shared.fake_provider_inputs) and deterministic apart from ids, so tests can predict every field.

Thinking signatures are an HMAC of the thinking text under a fixed fake key: the provider checks the ones a
client sends back in history, as Anthropic does, so a gateway that alters a thinking block is caught."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.fake_provider_inputs import Inputs
from shared.fake_provider_schema import example_value

__all__ = ["REFUSAL_TEXT", "Block", "Reply", "Usage", "answer_blocks", "bad_signature", "sign_thinking"]

REFUSAL_TEXT = "I can't help with that request."
_THINKING_KEY = b"fake-provider-thinking-signature-key"
_CHUNK_CHARS = 8
# Reasoning tokens an OpenAI model spends per `reasoning_effort` (billed as completion tokens).
_REASONING_TOKENS = {"none": 0, "minimal": 4, "low": 8, "medium": 16, "high": 32, "xhigh": 48}


@dataclass(frozen=True)
class Block:
    """One output block. `text` is the thinking, text or refusal, or a tool call's JSON arguments; `pieces`
    are its streamed fragments (`"".join(pieces) == text`)."""

    kind: str  # thinking | text | refusal | tool_use
    text: str
    pieces: tuple[str, ...]
    signature: str = ""
    tool_id: str = ""
    name: str = ""

    @property
    def tokens(self) -> int:
        return len(self.pieces) if self.kind == "tool_use" else len(self.text.split())


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0  # OpenAI prompt_tokens_details.cached_tokens (part of prompt_tokens)
    cache_read: int = 0  # Anthropic cache_read_input_tokens (not part of input_tokens)
    cache_write_5m: int = 0
    cache_write_1h: int = 0


@dataclass(frozen=True)
class Reply:
    """One generated answer. `finish` is Anthropic-flavoured: end_turn, max_tokens, stop_sequence, tool_use,
    refusal; each dialect maps it to its own vocabulary."""

    id: str
    model: str
    blocks: tuple[Block, ...]
    usage: Usage
    finish: str
    stop_sequence: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def text(self) -> str:
        return "".join(block.text for block in self.blocks if block.kind == "text")

    @property
    def prompt_tokens(self) -> int:
        return self.usage.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.usage.completion_tokens


def sign_thinking(thinking: str) -> str:
    digest = hmac.new(_THINKING_KEY, thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def bad_signature(messages: list[Any]) -> str | None:
    """Where a thinking block sent back in history does not carry the signature this provider gave it."""
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for position, block in enumerate(content):
            if not isinstance(block, Mapping) or block.get("type") != "thinking":
                continue
            thinking, signature = block.get("thinking"), block.get("signature")
            expected = sign_thinking(thinking) if isinstance(thinking, str) else None
            if not isinstance(signature, str) or not hmac.compare_digest(signature, expected or ""):
                return f"messages.{index}.content.{position}"
    return None


def word_pieces(text: str) -> tuple[str, ...]:
    """One streamed piece per word; each after the first carries its leading space."""
    return tuple(word if index == 0 else f" {word}" for index, word in enumerate(text.split()))


def char_pieces(text: str) -> tuple[str, ...]:
    return tuple(text[start:start + _CHUNK_CHARS] for start in range(0, len(text), _CHUNK_CHARS))


def reasoning_tokens(effort: str | None) -> int:
    return 0 if effort is None else _REASONING_TOKENS.get(effort, _REASONING_TOKENS["medium"])


def answer_blocks(inputs: Inputs, words: tuple[str, ...], call_id: str) -> tuple[list[Block], str | None]:
    """The answer's blocks (thinking first when asked for) and the stop sequence that ended it, if any."""
    blocks: list[Block] = []
    if inputs.thinking:
        thinking = " ".join(["Thinking", "about:", *inputs.user_text.split()[:5]])
        blocks.append(Block("thinking", thinking, word_pieces(thinking), signature=sign_thinking(thinking)))
    if inputs.refuses:
        return [*blocks, Block("refusal", REFUSAL_TEXT, word_pieces(REFUSAL_TEXT))], None
    tool = inputs.tool_to_call()
    if tool is not None:
        generated = example_value(tool.schema)
        # Tool arguments are always an object, even for a schema that says nothing (or something else).
        args = {**(generated if isinstance(generated, dict) else {}), **inputs.directive_args}
        arguments = json.dumps(args)
        return [*blocks, Block("tool_use", arguments, char_pieces(arguments), tool_id=call_id, name=tool.name)], None
    if inputs.output_schema is not None or inputs.json_object:
        value = example_value(inputs.output_schema) if inputs.output_schema is not None else {"answer": " ".join(words)}
        text = json.dumps(value)
        return [*blocks, Block("text", text, char_pieces(text))], None
    text, stop = _stopped(_plain_text(inputs, words), inputs.stop_sequences)
    return [*blocks, Block("text", text, word_pieces(text))], stop


def _plain_text(inputs: Inputs, words: tuple[str, ...]) -> str:
    if inputs.tool_results:
        return "Tool result: " + " | ".join(inputs.tool_results)
    received = f"Received {', '.join(inputs.attachments)}. " if inputs.attachments else ""
    return received + " ".join(words)


def _stopped(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """Cut `text` before the earliest stop sequence in it, as a provider stops generating there."""
    hits = [(text.find(stop), stop) for stop in stops if stop in text]
    if not hits:
        return text, None
    where, stop = min(hits)
    return text[:where].rstrip(), stop
