"""The contract every provider adapter fulfils. Routing sees only this protocol and `GatewayError`s,
never an SDK type or a wire format."""

from collections.abc import AsyncGenerator
from typing import Protocol, runtime_checkable

from shared.endpoint_requests import EmbeddingRequest, TextCompletionRequest
from shared.models import ChatRequest, Completion, Delta
from shared.routing_table import Target


class Provider(Protocol):
    name: str

    async def complete(self, request: ChatRequest, target: Target, *, drop: frozenset[str] = frozenset()) -> Completion:
        """Non-streamed completion. Raises a `shared.errors.UpstreamError` subclass on failure. `drop` names
        the parameters (keys of `shared.wire.capabilities.unsupported_params`) to leave out: routing passes
        only those this target cannot honour and the operator or client allowed dropping."""
        ...

    def stream(self, request: ChatRequest, target: Target, *,
               drop: frozenset[str] = frozenset()) -> AsyncGenerator[Delta, None]:
        """Streamed completion. Errors raised before the first delta may fall back; later ones may not.
        The final delta carries the finish reason and usage. `drop` as for `complete`."""
        ...

    async def aclose(self) -> None:
        """Close the adapter's SDK clients."""
        ...


@runtime_checkable
class EmbeddingProvider(Protocol):
    """A provider whose API has embeddings (the routes file's `endpoints` says which targets serve them)."""

    async def embed(self, request: EmbeddingRequest, target: Target) -> Completion:
        """The vectors in `Completion.output` (an `EmbeddingOutput`), the billed input in its usage."""
        ...


@runtime_checkable
class TextCompletionProvider(Protocol):
    """A provider whose API has legacy text completions (`POST /v1/completions`)."""

    async def complete_text(self, request: TextCompletionRequest, target: Target) -> Completion:
        """The choices in `Completion.output` (a `TextCompletionOutput`), with the usage."""
        ...

    def stream_text(self, request: TextCompletionRequest, target: Target) -> AsyncGenerator[Completion, None]:
        """Each chunk's choice pieces as a partial `Completion`; usage on the last one. Errors before the first
        chunk may fall back; later ones may not."""
        ...


@runtime_checkable
class TokenCountingProvider(Protocol):
    """A provider whose API counts a Messages request's input tokens (Anthropic's `count_tokens`)."""

    async def count_tokens(self, request: ChatRequest, target: Target, *, drop: frozenset[str]) -> int:
        """The input tokens `request` would be billed on `target`, leaving out the parameters in `drop`."""
        ...
