"""A real HTTP server that receives webhooks in tests: it records every request (raw body, headers, arrival
time) and answers with scripted statuses (200 once the script runs out), served by uvicorn on a free port
of this machine, inside the test's event loop."""

import asyncio
import time
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.processes import free_port


@dataclass(frozen=True)
class Call:
    body: bytes
    headers: dict[str, str]
    at: float


@dataclass
class Receiver:
    """`statuses`: answers for the next requests, in order; afterwards every request gets `default`."""

    statuses: list[int] = field(default_factory=list)
    default: int = 200
    calls: list[Call] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = None
    _task: "asyncio.Task[None] | None" = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        self.calls.append(Call(body=await request.body(), headers=dict(request.headers), at=time.time()))
        self._arrived.set()
        return Response(status_code=self.statuses.pop(0) if self.statuses else self.default)

    async def wait_calls(self, count: int, timeout_s: float = 10) -> list[Call]:
        """The first `count` requests, once they have arrived."""
        deadline = time.monotonic() + timeout_s
        while len(self.calls) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(self.calls)} webhook calls within {timeout_s}s, expected {count}")
            self._arrived.clear()
            if len(self.calls) < count:
                try:
                    await asyncio.wait_for(self._arrived.wait(), timeout=remaining)
                except TimeoutError:
                    continue
        return self.calls[:count]

    async def __aenter__(self) -> "Receiver":
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
