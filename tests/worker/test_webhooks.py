"""The webhook sender against the real Redis and a real HTTP receiver: a job's end (or a queued job's cancel)
queues its delivery in the same commit; the sender POSTs the final job, signed; retries 5xx with growing
delays until delivered; dead-letters a permanent 4xx at once and a delivery out of attempts; hands pending
deliveries to another sender across a restart; and refuses private targets unless they are allowed."""

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from shared.config import Settings
from shared.job_view import render_job
from shared.jobs import JobOptions, JobOutcome, JobRecord, JobStore, usage_row
from shared.keys import WEBHOOK_DEAD_STREAM, WEBHOOK_RETRY_KEY, WEBHOOK_STREAM
from shared.models import ChatRequest, Completion, JobStatus, Message, Usage, WireFormat
from shared.webhooks import ATTEMPT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from tests.support.webhook_receiver import Receiver
from worker.webhooks import WebhookSender

REDIS_URL = "redis://127.0.0.1:6379/14"
SECRET = "whsec-test-0123456789abcdef"


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"redis_url": REDIS_URL, "webhook_secret": SECRET, "webhook_allow_private": True,
                                 "webhook_retry_base_s": 0.1, "webhook_max_attempts": 4, "webhook_timeout_s": 2.0}
    return Settings(_env_file=None, **{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()  # the webhook keys are global: each test starts from none
    yield client
    await client.aclose()


@pytest.fixture
def store(redis: Redis) -> JobStore:
    return JobStore(redis, ttl_s=600, events_maxlen=1000)


async def _job(store: JobStore, url: str) -> JobRecord:
    chat = ChatRequest(model="fake-openai", messages=[Message(role="user", content="hello")], stream=True)
    return await store.create(f"job_{uuid.uuid4().hex}", "ten_1", chat, WireFormat.OPENAI,
                              JobOptions(callback_url=url))


async def _succeed(store: JobStore, record: JobRecord) -> JobRecord:
    running = await store.mark_running(record.id, 1, "worker-test")
    assert running is not None
    completion = Completion(id=f"chatcmpl-{record.id}", model="fake-model", provider="openai", content="Hi there",
                            created=1_700_000_000,
                            usage=Usage(prompt_tokens=3, completion_tokens=2))
    outcome = JobOutcome(status=JobStatus.SUCCEEDED, completion=completion, provider="openai", model="fake-model",
                         prompt_tokens=3, completion_tokens=2)
    assert await store.finish(running, outcome, usage_row(running, outcome, 5))
    final = await store.get(record.id)
    assert final is not None
    return final


@asynccontextmanager
async def _sender(redis: Redis, store: JobStore, settings: Settings, consumer: str = "w1",
                  **kwargs: int) -> AsyncIterator[WebhookSender]:
    sender = WebhookSender(redis, store, settings, consumer=consumer, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        yield sender
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def _wait(check: Callable[[], "asyncio.Future[bool]"], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _dead(redis: Redis) -> list[dict[str, str]]:
    entries = await redis.xrange(WEBHOOK_DEAD_STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def test_webhook_delivers_signed_final_job(redis: Redis, store: JobStore) -> None:
    async with Receiver() as receiver, _sender(redis, store, _settings()):
        record = await _succeed(store, await _job(store, receiver.url))
        [call] = await receiver.wait_calls(1)
    assert verify_signature(SECRET, call.headers[SIGNATURE_HEADER.lower()], call.body)
    assert not verify_signature("another-secret", call.headers[SIGNATURE_HEADER.lower()], call.body)
    assert call.headers[EVENT_ID_HEADER.lower()] == record.id and call.headers[ATTEMPT_HEADER.lower()] == "1"
    payload = json.loads(call.body)
    assert payload == json.loads(json.dumps(render_job(record)))
    assert payload["status"] == "succeeded" and payload["result"]["choices"][0]["message"]["content"] == "Hi there"
    assert await redis.zcard(WEBHOOK_RETRY_KEY) == 0 and await redis.xlen(WEBHOOK_STREAM) == 0


async def test_webhook_job_without_callback_queues_nothing(redis: Redis, store: JobStore) -> None:
    await _succeed(store, await _job(store, ""))
    assert await redis.exists(WEBHOOK_STREAM) == 0


async def test_webhook_retries_server_errors_with_backoff_then_delivers(redis: Redis, store: JobStore) -> None:
    async with Receiver(statuses=[500, 503, 500]) as receiver, _sender(redis, store, _settings()):
        record = await _succeed(store, await _job(store, receiver.url))
        calls = await receiver.wait_calls(4)
        await asyncio.sleep(0.1)
    assert [c.headers[ATTEMPT_HEADER.lower()] for c in calls] == ["1", "2", "3", "4"]
    assert {c.headers[EVENT_ID_HEADER.lower()] for c in calls} == {record.id}
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    # base 0.1 s doubling, ±20% jitter: about 0.1, 0.2, 0.4
    assert 0.07 < gaps[0] < gaps[1] < gaps[2] and gaps[2] > 0.3, gaps
    assert len(receiver.calls) == 4 and await redis.zcard(WEBHOOK_RETRY_KEY) == 0 and await _dead(redis) == []


async def test_webhook_permanent_client_error_is_dead_lettered_without_retry(redis: Redis, store: JobStore) -> None:
    async with Receiver(statuses=[400]) as receiver, _sender(redis, store, _settings()):
        record = await _succeed(store, await _job(store, receiver.url))
        await receiver.wait_calls(1)
        await _wait(lambda: _has_dead(redis))
        await asyncio.sleep(0.5)  # a retry would be due by now
    assert len(receiver.calls) == 1
    [dead] = await _dead(redis)
    assert dead["job_id"] == record.id and dead["reason"] == "rejected" and dead["detail"] == "HTTP 400"


async def _has_dead(redis: Redis) -> bool:
    return bool(await redis.xlen(WEBHOOK_DEAD_STREAM))


async def test_webhook_rate_limited_and_timeout_statuses_are_retried(redis: Redis, store: JobStore) -> None:
    async with Receiver(statuses=[429, 408]) as receiver, _sender(redis, store, _settings()):
        await _succeed(store, await _job(store, receiver.url))
        await receiver.wait_calls(3)
    assert await _dead(redis) == []


async def test_webhook_dead_lettered_after_max_attempts(redis: Redis, store: JobStore) -> None:
    async with Receiver(default=502) as receiver, _sender(redis, store, _settings(webhook_max_attempts=3)):
        record = await _succeed(store, await _job(store, receiver.url))
        await _wait(lambda: _has_dead(redis))
        await asyncio.sleep(0.3)
    assert len(receiver.calls) == 3
    [dead] = await _dead(redis)
    assert dead["job_id"] == record.id and dead["reason"] == "exhausted" and dead["attempts"] == "3"
    assert await redis.zcard(WEBHOOK_RETRY_KEY) == 0


async def test_webhook_pending_delivery_survives_sender_restart(redis: Redis, store: JobStore) -> None:
    settings = _settings(webhook_retry_base_s=0.5)
    async with Receiver(statuses=[500]) as receiver:
        async with _sender(redis, store, settings, consumer="first"):
            record = await _succeed(store, await _job(store, receiver.url))
            await receiver.wait_calls(1)
            await _wait(lambda: _scheduled(redis))
        # the first sender is gone, its retry still scheduled in Redis: a new sender delivers it
        assert len(receiver.calls) == 1
        async with _sender(redis, store, settings, consumer="second"):
            calls = await receiver.wait_calls(2)
    assert calls[1].headers[EVENT_ID_HEADER.lower()] == record.id and calls[1].headers[ATTEMPT_HEADER.lower()] == "2"
    assert await redis.zcard(WEBHOOK_RETRY_KEY) == 0


async def _scheduled(redis: Redis) -> bool:
    return bool(await redis.zcard(WEBHOOK_RETRY_KEY))


async def test_webhook_entry_of_a_dead_consumer_is_taken_over(redis: Redis, store: JobStore) -> None:
    async with Receiver() as receiver:
        record = await _succeed(store, await _job(store, receiver.url))
        # a sender read the entry and died before moving it into the schedule
        await WebhookSender(redis, store, _settings(), consumer="dead").ensure_group()
        await redis.xreadgroup("webhook-senders", "dead", {WEBHOOK_STREAM: ">"}, count=10)
        async with _sender(redis, store, _settings(), consumer="alive", claim_idle_ms=100):
            [call] = await receiver.wait_calls(1)
    assert call.headers[EVENT_ID_HEADER.lower()] == record.id


async def test_webhook_cancelled_queued_job_is_notified(redis: Redis, store: JobStore) -> None:
    async with Receiver() as receiver, _sender(redis, store, _settings()):
        record = await _job(store, receiver.url)
        outcome = await store.request_cancel(record.id)
        assert outcome.changed and outcome.status is JobStatus.CANCELLED
        [call] = await receiver.wait_calls(1)
    assert json.loads(call.body)["status"] == "cancelled" and json.loads(call.body)["id"] == record.id


async def test_webhook_private_target_refused_unless_allowed(redis: Redis, store: JobStore) -> None:
    settings = _settings(webhook_allow_private=False)
    async with Receiver() as receiver, _sender(redis, store, settings):
        url = receiver.url.replace("127.0.0.1", "localhost")  # a name: resolved and checked at delivery
        record = await _succeed(store, await _job(store, url))
        await _wait(lambda: _has_dead(redis))
    assert receiver.calls == []
    [dead] = await _dead(redis)
    assert dead["job_id"] == record.id and dead["reason"] == "rejected" and "private" in dead["detail"]
