"""Counts a request's input tokens with tiktoken, as OpenAI would bill them for the target model: the request
is rendered for OpenAI (`shared.wire.openai_outbound`) and counted over that (`shared.wire.openai_tokens`).
The API's `POST /v1/messages/count_tokens` uses it for a route whose first eligible target is OpenAI (an
Anthropic target's count comes from Anthropic, through a worker). Encodings are loaded once per process, off
the event loop, from files a package ships (shared/tiktoken_files.py): nothing is downloaded."""

import asyncio
from dataclasses import dataclass, field

import tiktoken

from shared.config import Settings
from shared.models import ChatRequest
from shared.tiktoken_files import ENCODINGS, load_encoding
from shared.wire.openai_outbound import render_request
from shared.wire.openai_tokens import count_chat_input

__all__ = ["DEFAULT_ENCODING", "TokenCount", "TokenCounter", "encoding_name"]

DEFAULT_ENCODING = "o200k_base"
"""For a model tiktoken does not know (a private deployment's name): the encoding of every current OpenAI chat
model. A model whose encoding is not shipped (only pre-chat completion models use others) takes it too."""


@dataclass(frozen=True)
class TokenCount:
    input_tokens: int
    counter: str
    """Which counter answered, e.g. `tiktoken/o200k_base` (the `x-gateway-token-counter` header)."""


def encoding_name(model: str) -> str:
    """tiktoken's encoding for `model`, by its own table of names and prefixes."""
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        return DEFAULT_ENCODING
    return name if name in ENCODINGS else DEFAULT_ENCODING


@dataclass
class TokenCounter:
    """One per API process (api.deps.AppState): holds the loaded encodings; a lock makes concurrent first
    requests load an encoding once."""

    _encodings: dict[str, tiktoken.Encoding] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def count(self, request: ChatRequest, model: str, settings: Settings, *,
                    drop: frozenset[str] = frozenset()) -> TokenCount:
        """`request`'s input tokens on OpenAI `model`, leaving out the parameters in `drop` as a target
        would; what the target cannot take raises `UnsupportedParameter`, as serving it would."""
        rendered = render_request(request, model, drop=drop)
        name = encoding_name(model)
        encoding = await self.encoding(name, settings)
        # Encoding a long prompt is CPU work; tiktoken releases the GIL while it encodes.
        tokens = await asyncio.to_thread(count_chat_input, rendered, encoding, model)
        return TokenCount(input_tokens=tokens, counter=f"tiktoken/{name}")

    async def encoding(self, name: str, settings: Settings) -> tiktoken.Encoding:
        if name not in self._encodings:
            async with self._lock:
                if name not in self._encodings:
                    self._encodings[name] = await asyncio.to_thread(load_encoding, name, settings)
        return self._encodings[name]
