"""The provider endpoints a job can call (`Endpoint`) and the typed outputs of the non-chat ones. A chat job's
output is the `Completion` itself; an embeddings or legacy-completions job's answer rides in
`Completion.output`, so the job's end, its terminal event, the cache and the relay carry every kind the same
way. Imports nothing from the project: `shared.models` and `shared.routing_table` build on it.

Adding a kind: a member here, a request model in `shared.endpoint_requests` (with its tag in `JobRequest`),
an output model below (in `EndpointOutput`) if it has one, and a job module in worker/ (its line in
`worker.endpoint_jobs.RUNNERS`)."""

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

__all__ = ["EmbeddingOutput", "Endpoint", "EndpointOutput", "TextChoice", "TextCompletionOutput", "TokenCountOutput"]


class Endpoint(StrEnum):
    """What a job asks a provider for; a target of a route serves some of them (shared.routing_table)."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    COMPLETIONS = "completions"
    COUNT_TOKENS = "count_tokens"


class EmbeddingOutput(BaseModel):
    """One vector per input, in input order: a list of floats, or the base64 string of little-endian float32
    values when the client asked `encoding_format: base64` (kept as the provider sent it)."""

    kind: Literal["embeddings"] = "embeddings"
    embeddings: list[list[float] | str]


class TextChoice(BaseModel):
    """One legacy completion choice; `logprobs` verbatim ({tokens, token_logprobs, top_logprobs, text_offset})."""

    index: int
    text: str
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class TextCompletionOutput(BaseModel):
    kind: Literal["completions"] = "completions"
    choices: list[TextChoice]
    system_fingerprint: str | None = None


class TokenCountOutput(BaseModel):
    """Anthropic's count of a Messages request's input tokens. Not usage: counting is not billed."""

    kind: Literal["count_tokens"] = "count_tokens"
    input_tokens: int


EndpointOutput = Annotated[EmbeddingOutput | TextCompletionOutput | TokenCountOutput, Field(discriminator="kind")]
"""The output of a non-chat job, tagged by `kind`."""
