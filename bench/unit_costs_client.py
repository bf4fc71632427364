"""The load of the unit-cost benchmark: a fixed number of requests by a closed loop of users, each user on its
own httpx HTTP/1.1 keep-alive connection (one pool of N connections costs O(N) per request in httpcore's
bookkeeping: bench/gateway_client.py), kept open from the warm-up through the measured requests so the window
opens no connection. Every answer is checked: a plain one carries `choices`, a stream ends with a usage chunk
and `[DONE]`."""

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

PROMPT = "Say hello to the unit-cost benchmark."
MAX_ERROR_SAMPLES = 5


def request_body(model: str, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body.update({"stream": True, "stream_options": {"include_usage": True}})
    return json.dumps(body).encode()


@dataclass
class Batch:
    """What a batch of requests did: answers that passed their check, the problems of the others, latencies,
    and the arrival times of stream chunks (`data:` lines) for the streams held open in the hold phase."""

    ok: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_s)
        p50 = 1000 * ordered[len(ordered) // 2] if ordered else None
        samples = sorted(set(self.errors))[:MAX_ERROR_SAMPLES]
        return {"ok": self.ok, "errors": len(self.errors), "error_samples": samples, "latency_p50_ms": p50}


class Users:
    """`concurrency` users, each with its own connection, sending one request body to one URL."""

    def __init__(self, url: str, headers: dict[str, str], content: bytes, stream: bool, concurrency: int) -> None:
        self.url, self.content, self.stream = url, content, stream
        self.headers = {**headers, "Content-Type": "application/json"}
        self.concurrency = concurrency
        self._stack = contextlib.AsyncExitStack()
        self._clients: list[httpx.AsyncClient] = []

    async def __aenter__(self) -> "Users":
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._clients = [await self._stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=60))
                         for _ in range(self.concurrency)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def run(self, requests: int, record_chunks: bool = False) -> Batch:
        """Send `requests` requests in all, `concurrency` at a time; returns when every one has ended."""
        import asyncio

        batch = Batch()
        left = requests

        async def user(client: httpx.AsyncClient) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                started = time.perf_counter()
                try:
                    problem = await self._one(client, batch if record_chunks else None)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"[:160]
                batch.latencies_s.append(time.perf_counter() - started)
                if problem is None:
                    batch.ok += 1
                else:
                    batch.errors.append(problem)

        await asyncio.gather(*(user(client) for client in self._clients[:requests]))
        return batch

    async def _one(self, client: httpx.AsyncClient, chunks: Batch | None) -> str | None:
        if not self.stream:
            response = await client.post(self.url, content=self.content, headers=self.headers)
            if response.status_code != 200 or b'"choices"' not in response.content:
                return f"HTTP {response.status_code}: {response.content[:120]!r}"
            return None
        tail = b""
        async with client.stream("POST", self.url, content=self.content, headers=self.headers) as response:
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {(await response.aread())[:120]!r}"
            async for raw in response.aiter_raw():
                tail = (tail + raw)[-4096:]
                if chunks is not None:
                    now = time.perf_counter()
                    chunks.chunk_times.extend(now for _ in range(raw.count(b"data: ")))
        if b"data: [DONE]" not in tail or b"completion_tokens" not in tail:
            return f"stream end without usage or [DONE]: {tail[-120:]!r}"
        return None
