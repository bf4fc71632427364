"""shared/response_store.py's settling of a stored response when its job ends (the worker's side), on an
in-process Redis: the outcome lands with the retention kept, nothing is written for a response that was not
stored or was deleted, a chat job costs no Redis command, and a Redis error never fails the job's end."""

import logging
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.errors import UpstreamUnavailable
from shared.jobs import JobOutcome, JobRecord
from shared.models import Completion, FinishReason, JobStatus, Usage, WireFormat
from shared.response_store import (
    ResponseStore,
    StoredResponse,
    ended_status,
    response_id_of,
    response_key,
    settle_job_response,
)
from tests.factories import make_chat_request, make_fake_redis

TENANT = "t1"
JOB = "job_0123"


def _record(wire: WireFormat = WireFormat.RESPONSES) -> JobRecord:
    return JobRecord(id=JOB, tenant_id=TENANT, status=JobStatus.RUNNING, wire_format=wire,
                     request=make_chat_request(), created_at=1.0)


def _completion(finish: FinishReason = FinishReason.STOP) -> Completion:
    return Completion(id=f"resp_{JOB}", model="m", provider="openai", content="the answer", finish_reason=finish,
                      usage=Usage(prompt_tokens=3, completion_tokens=2))


def _stored() -> StoredResponse:
    return StoredResponse(id=response_id_of(JOB), tenant_id=TENANT, job_id=JOB, model="m")


@pytest.mark.parametrize(("status", "finish", "expected"), [
    (JobStatus.SUCCEEDED, FinishReason.STOP, "completed"),
    (JobStatus.SUCCEEDED, FinishReason.LENGTH, "incomplete"),
    (JobStatus.CANCELLED, None, "cancelled"),
    (JobStatus.FAILED, None, "failed"),
])
def test_ended_status_maps_job_end_to_response_status(status: JobStatus, finish: FinishReason | None,
                                                      expected: str) -> None:
    completion = _completion(finish) if finish is not None else None
    assert ended_status(status, completion) == expected


async def test_settle_job_response_records_answer_and_keeps_retention() -> None:
    redis = make_fake_redis()
    await ResponseStore(redis, ttl_s=1000).save(_stored())
    await settle_job_response(redis, _record(), JobOutcome(status=JobStatus.SUCCEEDED, completion=_completion()))
    settled = await ResponseStore(redis, ttl_s=1000).get(TENANT, response_id_of(JOB))
    assert settled is not None and settled.status == "completed"
    assert settled.completion is not None and settled.completion.content == "the answer"
    assert 990_000 < await redis.pttl(response_key(TENANT, response_id_of(JOB))) <= 1_000_000


async def test_settle_job_response_keeps_failed_job_error() -> None:
    redis = make_fake_redis()
    await ResponseStore(redis, ttl_s=1000).save(_stored())
    error = UpstreamUnavailable("all down").to_dict()
    await settle_job_response(redis, _record(), JobOutcome(status=JobStatus.FAILED, error=error))
    settled = await ResponseStore(redis, ttl_s=1000).get(TENANT, response_id_of(JOB))
    assert settled is not None and settled.status == "failed" and settled.error == error
    assert settled.completion is None


async def test_settle_job_response_writes_nothing_when_not_stored_or_deleted() -> None:
    redis = make_fake_redis()
    outcome = JobOutcome(status=JobStatus.SUCCEEDED, completion=_completion())
    await settle_job_response(redis, _record(), outcome)
    assert await redis.keys("*") == []


async def test_settle_job_response_leaves_an_ended_response_as_it_is() -> None:
    redis = make_fake_redis()
    store = ResponseStore(redis, ttl_s=1000)
    await store.save(_stored())
    await store.settle(_stored(), JobStatus.CANCELLED, None, None)
    await settle_job_response(redis, _record(), JobOutcome(status=JobStatus.SUCCEEDED, completion=_completion()))
    settled = await store.get(TENANT, response_id_of(JOB))
    assert settled is not None and settled.status == "cancelled"


class _NoCommands:
    """A Redis that fails the test on any use: a chat job must not cost the chat path a command."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Redis used for a chat job: {name}")


@pytest.mark.parametrize("wire", [WireFormat.OPENAI, WireFormat.ANTHROPIC])
async def test_settle_job_response_sends_no_command_for_other_formats(wire: WireFormat) -> None:
    outcome = JobOutcome(status=JobStatus.SUCCEEDED, completion=_completion())
    await settle_job_response(_NoCommands(), _record(wire), outcome)  # type: ignore[arg-type]


class _Down:
    async def get(self, key: str) -> bytes:
        raise RedisConnectionError("connection refused")


async def test_settle_job_response_logs_redis_error_instead_of_raising(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.response_store"):
        await settle_job_response(_Down(), _record(), JobOutcome(status=JobStatus.CANCELLED))  # type: ignore[arg-type]
    assert "not settled (ConnectionError)" in caplog.text
