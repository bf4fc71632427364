"""The typed request of each job kind (`JobRequest`): the chat model (`shared.models.ChatRequest`) or one of
the non-chat requests here, each with every field its endpoint has. A job record holds one, tagged by its
`endpoint` field; a chat request has no tag, so records written before job kinds existed load as chat.
Also what admission needs of any kind: its estimated input tokens and its most output tokens."""

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from shared.endpoint import Endpoint
from shared.estimate import CHARS_PER_TOKEN, estimate_prompt_tokens
from shared.models import ChatRequest

__all__ = [
    "DEFAULT_COMPLETION_MAX_TOKENS",
    "CountTokensRequest",
    "EmbeddingRequest",
    "JobRequest",
    "TextCompletionRequest",
    "endpoint_of",
    "estimate_input_tokens",
    "generated_choices",
    "most_output_tokens",
]

DEFAULT_COMPLETION_MAX_TOKENS = 16
"""OpenAI's default `max_tokens` for a legacy completion: what a request without one can answer with."""

TokenInput = str | list[str] | list[int] | list[list[int]]
"""Text, texts, one token array, or token arrays: what `input` (embeddings) and `prompt` (completions) take."""


class EmbeddingRequest(BaseModel):
    """`POST /v1/embeddings`. `extra` holds the body fields OpenAI's API does not define, verbatim: an
    OpenAI-compatible embeddings server may take them, and they are forwarded (never dropped)."""

    endpoint: Literal["embeddings"] = "embeddings"
    stream: ClassVar[bool] = False
    model: str = Field(min_length=1)
    input: TokenInput
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class TextCompletionRequest(BaseModel):
    """`POST /v1/completions` (legacy text completions), every field of OpenAI's API; `extra` as above."""

    endpoint: Literal["completions"] = "completions"
    model: str = Field(min_length=1)
    prompt: TokenInput
    suffix: str | None = None
    echo: bool | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    best_of: int | None = Field(default=None, ge=0, le=20)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    stream: bool = False
    include_usage: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)


class CountTokensRequest(BaseModel):
    """`POST /v1/messages/count_tokens` on an Anthropic target: the Messages request to count, as parsed
    (`shared.wire.anthropic_count`; it has no `max_tokens`)."""

    endpoint: Literal["count_tokens"] = "count_tokens"
    stream: ClassVar[bool] = False
    request: ChatRequest

    @property
    def model(self) -> str:
        return self.request.model


def _request_tag(value: object) -> str:
    """A stored request names its kind in `endpoint`; a chat request (and every record older than job
    kinds) has none."""
    if isinstance(value, dict):
        return str(value.get("endpoint", Endpoint.CHAT.value))
    return str(getattr(value, "endpoint", Endpoint.CHAT.value))


JobRequest = Annotated[
    Annotated[ChatRequest, Tag(Endpoint.CHAT.value)]
    | Annotated[EmbeddingRequest, Tag(Endpoint.EMBEDDINGS.value)]
    | Annotated[TextCompletionRequest, Tag(Endpoint.COMPLETIONS.value)]
    | Annotated[CountTokensRequest, Tag(Endpoint.COUNT_TOKENS.value)],
    Discriminator(_request_tag),
]
"""The request a job runs; validated as the one model its tag names (a chat request: one pass, as before)."""


def endpoint_of(request: ChatRequest | EmbeddingRequest | TextCompletionRequest | CountTokensRequest) -> Endpoint:
    return Endpoint(_request_tag(request))


def estimate_input_tokens(request: ChatRequest | EmbeddingRequest | TextCompletionRequest | CountTokensRequest) -> int:
    """The request's input tokens, upper-leaning as `shared.estimate` is: text at CHARS_PER_TOKEN, token
    arrays counted exactly; a completion's `suffix` is input too."""
    if isinstance(request, ChatRequest):
        return estimate_prompt_tokens(request)
    if isinstance(request, CountTokensRequest):
        return estimate_prompt_tokens(request.request)
    if isinstance(request, EmbeddingRequest):
        return _tokens(request.input)
    return _tokens(request.prompt) + math.ceil(len(request.suffix or "") / CHARS_PER_TOKEN)


def most_output_tokens(request: EmbeddingRequest | TextCompletionRequest | CountTokensRequest) -> int:
    """The most output tokens a non-chat request can be billed for: none for embeddings and counts; for a completion,
    `max_tokens` (OpenAI's default 16 without it) for each of the `max(n, best_of)` choices it generates per
    prompt (best_of choices are generated and billed, n returned)."""
    if isinstance(request, EmbeddingRequest | CountTokensRequest):
        return 0
    per_choice = DEFAULT_COMPLETION_MAX_TOKENS if request.max_tokens is None else request.max_tokens
    return per_choice * generated_choices(request)


def generated_choices(request: TextCompletionRequest) -> int:
    """How many choices a completion request generates, each up to `max_tokens`: `max(n, best_of)` per
    prompt."""
    return max(request.n or 1, request.best_of or 1) * _prompt_count(request.prompt)


def _tokens(value: TokenInput) -> int:
    if isinstance(value, str):
        return max(1, math.ceil(len(value) / CHARS_PER_TOKEN))
    total = 0
    for item in value:
        if isinstance(item, str):
            total += max(1, math.ceil(len(item) / CHARS_PER_TOKEN))
        elif isinstance(item, int):
            total += 1
        else:
            total += len(item)
    return total


def _prompt_count(prompt: TokenInput) -> int:
    """A string or one token array is one prompt; a list of strings or of token arrays is one each."""
    if isinstance(prompt, str) or not prompt or isinstance(prompt[0], int):
        return 1
    return len(prompt)
