"""The contract every provider adapter fulfils. Routing sees only this protocol and `GatewayError`s,
never an SDK type or a wire format."""

from collections.abc import AsyncIterator
from typing import Protocol

from shared.models import ChatRequest, Completion, Delta
from shared.routing_table import Target


class Provider(Protocol):
    name: str

    async def complete(self, request: ChatRequest, target: Target) -> Completion:
        """Non-streamed completion. Raises a `shared.errors.UpstreamError` subclass on failure."""
        ...

    def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[Delta]:
        """Streamed completion. Errors raised before the first delta may fall back; later ones may not.
        The final delta carries the finish reason and usage."""
        ...

    async def aclose(self) -> None:
        """Close the adapter's SDK clients."""
        ...
