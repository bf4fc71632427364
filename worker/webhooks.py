"""Sends job webhooks, at least once, in the background of every worker (started by worker/main.py).

A job's end adds a delivery to the `gw:webhooks` stream in its terminal commit (shared/lua/finish.lua, or
`JobStore.request_cancel` for a queued job), so no ended job can miss its webhook. Senders read the stream
in a consumer group, like the usage writer: an entry is acknowledged only once it has been moved, in the
same transaction, into the delivery schedule, a sorted set of deliveries scored by when each attempt is
due. Attempts are claimed from the schedule by pushing their score a lease ahead (shared/lua/
webhook_claim.lua), so two senders never attempt one delivery at once and a sender that dies mid-attempt
leaves it to the others; a stopping sender hands its in-flight deliveries back at once. The schedule lives
in Redis, so retries survive worker restarts.

An attempt POSTs the job as `GET /api/v1/jobs/{id}` renders it, or an event's stored body (a budget alert,
queued by shared/lua/budget_alert.lua under an `evt_` id), signed (shared/webhooks.py). 2xx is
delivered; 408, 429, 5xx and network errors are retried with exponential backoff and jitter up to
WEBHOOK_MAX_ATTEMPTS; any other status (4xx, and 3xx: redirects are not followed) is a permanent failure.
Permanent and exhausted failures go to the `gw:webhooks:dead` stream. Unless WEBHOOK_ALLOW_PRIVATE, each
attempt resolves the host, refuses private, loopback and link-local addresses, and connects to the address
it checked (TLS still verifies the host name), so DNS rebinding cannot redirect it."""

import asyncio
import json
import logging
import random
import socket
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import httpx
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from shared.config import Settings
from shared.job_view import render_job
from shared.jobs import JobStore
from shared.keys import WEBHOOK_DEAD_STREAM, WEBHOOK_GROUP, WEBHOOK_RETRY_KEY, WEBHOOK_STREAM, webhook_event_key
from shared.metrics import WEBHOOK_DELIVERIES
from shared.redis import is_missing_group
from shared.scripts import LuaScript, lua_source
from shared.webhooks import (
    ATTEMPT_HEADER,
    EVENT_ID_HEADER,
    EVENT_ID_PREFIX,
    SIGNATURE_HEADER,
    Delivery,
    is_public_address,
    retry_delay_s,
    sign,
)

__all__ = ["Attempt", "Delivery", "WebhookSender"]  # Delivery: shared.webhooks, re-exported

logger = logging.getLogger(__name__)

CLAIM = LuaScript(lua_source("webhook_claim.lua"))
MAX_IN_FLIGHT = 64
INTAKE_BATCH = 100
INTAKE_BLOCK_MS = 500
CLAIM_IDLE_MS = 60_000
IDLE_POLL_S = 1.0
MIN_POLL_S = 0.005
MAX_BACKOFF_S = 10.0
LEASE_MARGIN_S = 5.0
SHUTDOWN_GRACE_S = 2.0
DEAD_MAXLEN = 100_000
USER_AGENT = "llm-gateway-webhooks/1"


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to: `delivered`, `retry` or `rejected` (permanent); `detail` says why."""

    outcome: str
    detail: str
    retry_after_s: float | None = None


class RefusedTarget(Exception):
    """The callback host resolves to an address webhooks may not reach."""


class WebhookSender:
    def __init__(self, redis: Redis, store: JobStore, settings: Settings, *, consumer: str,
                 client: httpx.AsyncClient | None = None, claim_idle_ms: int = CLAIM_IDLE_MS,
                 rng: random.Random | None = None) -> None:
        self._redis = redis
        self._store = store
        self._settings = settings
        self._secret = settings.webhook_secret or ""
        self._consumer = consumer
        self._client = client
        self._http: httpx.AsyncClient | None = client
        self._claim_idle_ms = claim_idle_ms
        self._rng = rng or random.Random()  # nosec B311: retry jitter, not a secret
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._own_pending = True
        self._next_claim_at = 0.0
        self._group_ready = False

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(WEBHOOK_STREAM, WEBHOOK_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def run(self, stop: asyncio.Event) -> None:
        """Move new deliveries into the schedule and attempt due ones until `stop` is set."""
        owns_client = self._client is None
        self._http = self._client or httpx.AsyncClient(
            timeout=self._settings.webhook_timeout_s, follow_redirects=False, headers={"user-agent": USER_AGENT})
        try:
            await asyncio.gather(self._intake_loop(stop), self._dispatch_loop(stop))
        finally:
            await self._hand_back_in_flight()
            if owns_client:
                await self._http.aclose()

    async def _intake_loop(self, stop: asyncio.Event) -> None:
        backoff_s = 0.1
        while not stop.is_set():
            try:
                if not self._group_ready:
                    await self.ensure_group()
                await self.intake_once(block_ms=INTAKE_BLOCK_MS)
                backoff_s = 0.1
            except Exception as exc:  # Redis is down: entries stay in the stream, retry later
                if isinstance(exc, ResponseError) and is_missing_group(exc):
                    # Redis lost its data (restart without persistence, flush, eviction): deliveries queued
                    # before then are gone; create the group again for those queued since.
                    self._group_ready = False
                logger.warning("webhook intake failed, retrying in %.1fs: %s", backoff_s, type(exc).__name__)
                await _pause(stop, None, backoff_s)
                backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)

    async def _dispatch_loop(self, stop: asyncio.Event) -> None:
        backoff_s = 0.1
        while not stop.is_set():
            try:
                wait_s = await self.dispatch_once()
                backoff_s = 0.1
            except Exception as exc:
                logger.warning("webhook dispatch failed, retrying in %.1fs: %s", backoff_s, type(exc).__name__)
                wait_s, backoff_s = backoff_s, min(MAX_BACKOFF_S, backoff_s * 2)
            await _pause(stop, self._wake, wait_s)

    async def intake_once(self, *, block_ms: int | None) -> int:
        """Move one batch from the stream into the schedule (due now): this consumer's unacknowledged entries
        first, then dead consumers', then new ones. The move and the acknowledgement are one transaction."""
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        from_pending = self._own_pending
        if from_pending:
            entries = await self._read("0", block_ms=None)
            from_pending = self._own_pending = bool(entries)
        if not entries and time.monotonic() >= self._next_claim_at:
            reply = await self._redis.xautoclaim(WEBHOOK_STREAM, WEBHOOK_GROUP, self._consumer,
                                                 min_idle_time=self._claim_idle_ms, count=INTAKE_BATCH)
            entries = [(eid, fields) for eid, fields in reply[1] if fields]
            self._next_claim_at = time.monotonic() + self._claim_idle_ms / 2000
        if not entries:
            entries = await self._read(">", block_ms=block_ms)
        if not entries:
            return 0
        self._own_pending = True  # until acknowledged below
        now_ms = _now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            for _, fields in entries:
                job_id, url = fields.get(b"job_id"), fields.get(b"url")
                if job_id and url:
                    pipe.zadd(WEBHOOK_RETRY_KEY, {Delivery(job_id.decode(), url.decode(), 1).member(): now_ms}, nx=True)
                else:
                    # redis-py types xadd's fields as an invariant `dict[FieldT, EncodableT]` where it only
                    # reads them (a Mapping would do), so a `dict[bytes, bytes]` has to be widened.
                    dead = cast("dict[FieldT, EncodableT]", {**fields, b"reason": b"malformed"})
                    pipe.xadd(WEBHOOK_DEAD_STREAM, dead, maxlen=DEAD_MAXLEN, approximate=True)
            ids = [entry_id for entry_id, _ in entries]
            pipe.xack(WEBHOOK_STREAM, WEBHOOK_GROUP, *ids)
            pipe.xdel(WEBHOOK_STREAM, *ids)
            await pipe.execute()
        self._own_pending = from_pending and len(entries) >= INTAKE_BATCH
        self._wake.set()
        return len(entries)

    async def _read(self, start: str, *, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply = await self._redis.xreadgroup(WEBHOOK_GROUP, self._consumer, {WEBHOOK_STREAM: start},
                                             count=INTAKE_BATCH, block=block_ms)
        return [(eid, fields) for eid, fields in reply[0][1] if fields] if reply else []

    async def dispatch_once(self) -> float:
        """Start the due attempts there are free slots for; the seconds until the next is due (at most
        IDLE_POLL_S: other workers add to the schedule too)."""
        self._wake.clear()  # before the claim, so a wake-up during it is not lost
        free = MAX_IN_FLIGHT - len(self._in_flight)
        if free <= 0:
            return IDLE_POLL_S  # a finished attempt wakes the loop
        now_ms = _now_ms()
        lease_ms = int((self._settings.webhook_timeout_s + LEASE_MARGIN_S) * 1000)
        claimed = await CLAIM.run(self._redis, [WEBHOOK_RETRY_KEY], [now_ms, now_ms + lease_ms, free])
        raw = claimed if isinstance(claimed, list) else []
        members = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
        for member in members:
            task = asyncio.create_task(self._deliver(member), name="webhook-delivery")
            self._in_flight[member] = task
            task.add_done_callback(partial(self._finished, member))
        if len(members) >= free:
            return IDLE_POLL_S
        earliest = await self._redis.zrange(WEBHOOK_RETRY_KEY, 0, 0, withscores=True)
        if not earliest:
            return IDLE_POLL_S
        return min(IDLE_POLL_S, max(MIN_POLL_S, (float(earliest[0][1]) - _now_ms()) / 1000))

    def _finished(self, member: str, _task: "asyncio.Task[None]") -> None:
        self._in_flight.pop(member, None)
        self._wake.set()

    async def _deliver(self, member: str) -> None:
        try:
            delivery = Delivery.parse(member)
        except (ValueError, KeyError, TypeError):
            delivery = Delivery(job_id="", url="", attempt=self._settings.webhook_max_attempts)
            await self._settle(member, delivery, Attempt("rejected", "malformed schedule entry"))
            return
        try:
            result = await self.attempt(delivery)
            await self._settle(member, delivery, result)
        except Exception:  # Redis down mid-settle: the lease runs out and the attempt is made again
            logger.exception("webhook delivery of job %s could not be settled", delivery.job_id)

    async def attempt(self, delivery: Delivery) -> Attempt:
        """POST the job (or the event, such as a budget alert) to its URL once; classify the answer. The
        answer's body is never read."""
        body = await self._body(delivery.job_id)
        if body is None:
            return Attempt("rejected", "the job or event no longer exists (JOB_TTL_S)")
        try:
            url, headers, extensions = await self._target(delivery.url)
        except RefusedTarget as exc:
            return Attempt("rejected", str(exc))
        except OSError as exc:  # DNS failure: may be transient
            return Attempt("retry", f"could not resolve the host: {exc}")
        headers.update({"content-type": "application/json", SIGNATURE_HEADER: sign(self._secret, body),
                        EVENT_ID_HEADER: delivery.job_id, ATTEMPT_HEADER: str(delivery.attempt)})
        if self._http is None:
            raise RuntimeError("webhook sender used before start()")
        try:
            async with self._http.stream("POST", url, content=body, headers=headers,
                                         extensions=extensions) as response:
                status, retry_after = response.status_code, response.headers.get("retry-after", "")
        except httpx.HTTPError as exc:
            return Attempt("retry", f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= status < 300:
            return Attempt("delivered", f"HTTP {status}")
        if status in (408, 429) or status >= 500:
            seconds = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
            return Attempt("retry", f"HTTP {status}", retry_after_s=seconds)
        return Attempt("rejected", f"HTTP {status}")

    async def _body(self, ident: str) -> bytes | None:
        """What a delivery sends: an event's stored body (shared/budget_alerts.py), or the job as
        `GET /api/v1/jobs/{id}` renders it; None when it expired."""
        if ident.startswith(EVENT_ID_PREFIX):
            stored = await self._redis.get(webhook_event_key(ident))
            return stored.encode() if isinstance(stored, str) else stored
        record = await self._store.get(ident)
        return None if record is None else json.dumps(render_job(record), separators=(",", ":")).encode()

    async def _target(self, url: str) -> tuple[str, dict[str, str], dict[str, object]]:
        """The URL to connect to, with the Host header and TLS name to send: the callback URL itself when
        private targets are allowed, else the URL with its host replaced by the public address it resolves
        to (all of its addresses must be public)."""
        if self._settings.webhooks_allow_private:
            return url, {}, {}
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise OSError(f"{host} has no address")
        if not all(is_public_address(address) for address in addresses):
            raise RefusedTarget(f"{host} resolves to a private, loopback or link-local address")
        literal = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        extensions: dict[str, object] = {"sni_hostname": host} if parts.scheme == "https" else {}
        return pinned, {"host": parts.netloc}, extensions

    async def _settle(self, member: str, delivery: Delivery, result: Attempt) -> None:
        """Take the attempt off the schedule and, in the same transaction, schedule the next attempt or
        dead-letter the delivery."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(WEBHOOK_RETRY_KEY, member)
            if result.outcome == "delivered":
                outcome = "delivered"
            elif result.outcome == "retry" and delivery.attempt < self._settings.webhook_max_attempts:
                outcome = "retried"
                delay_s = retry_delay_s(delivery.attempt, base_s=self._settings.webhook_retry_base_s,
                                        max_s=self._settings.webhook_retry_max_s,
                                        retry_after_s=result.retry_after_s, rng=self._rng)
                following = replace(delivery, attempt=delivery.attempt + 1)
                pipe.zadd(WEBHOOK_RETRY_KEY, {following.member(): _now_ms() + int(delay_s * 1000)})
            else:
                outcome = "exhausted" if result.outcome == "retry" else "rejected"
                pipe.xadd(WEBHOOK_DEAD_STREAM, {
                    "job_id": delivery.job_id, "url": delivery.url, "attempts": str(delivery.attempt),
                    "reason": outcome, "detail": result.detail, "at": str(time.time()),
                }, maxlen=DEAD_MAXLEN, approximate=True)
            await pipe.execute()
        WEBHOOK_DELIVERIES.labels(outcome).inc()
        log = logger.warning if outcome in ("exhausted", "rejected") else logger.info
        log("webhook of job %s attempt %d: %s (%s)", delivery.job_id, delivery.attempt, outcome, result.detail)

    async def _hand_back_in_flight(self) -> None:
        """On stop: give running attempts a moment, then cancel them and make them due now for other workers."""
        tasks = dict(self._in_flight)
        if not tasks:
            return
        await asyncio.wait(tasks.values(), timeout=SHUTDOWN_GRACE_S)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        try:
            await self._redis.zadd(WEBHOOK_RETRY_KEY, dict.fromkeys(tasks, _now_ms()), xx=True)
        except Exception as exc:  # their leases run out instead
            logger.warning("could not hand back in-flight webhooks: %s", type(exc).__name__)


async def _pause(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` (or `wake`) is set."""
    waiters = [asyncio.ensure_future(stop.wait())] + ([asyncio.ensure_future(wake.wait())] if wake else [])
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _now_ms() -> int:
    return int(time.time() * 1000)
