"""What the per-tick batchers (shared/append_batch.py, shared/finish_batch.py) share: items submitted during one
event-loop tick are sent together by one `_send` call scheduled with `call_soon`, so an item waits at most for
the tick's other callbacks, never for a timer; each item has its own future, so each caller gets its own answer
or its own error. Subclasses say how a batch is sent and answered (`_send`)."""

import asyncio
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

__all__ = ["TickBatcher"]

ItemT = TypeVar("ItemT")


class TickBatcher(ABC, Generic[ItemT]):
    def __init__(self) -> None:
        self._pending: list[ItemT] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The current loop (to make an item's future on); on a new one (tests run several), nothing pending
        belongs to it."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._pending = loop, []
        return loop

    def add(self, item: ItemT) -> None:
        """Queue `item` (its future made on `running_loop()`) for this tick's batch; the first item of a tick
        schedules the send."""
        loop = self.running_loop()  # first: on a new loop it clears what belonged to the old one
        self._pending.append(item)
        if len(self._pending) == 1:
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)  # referenced until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._sending.discard)

    @abstractmethod
    async def _send(self, batch: list[ItemT]) -> None:
        """Send `batch` and settle each item's future (result or exception)."""
