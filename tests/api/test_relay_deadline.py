"""Who may cancel a job when waiting for it times out (REQUEST_TIMEOUT_S): the completion request that
created it (504, its answer will never be read), never a repeat of it (`Idempotency-Key`) that joined it."""

from dataclasses import replace

import pytest
from starlette.requests import Request

from api.deps import AppState
from api.responses import respond
from api.shards import ShardHandles
from api.submit import Submission
from shared.errors import UpstreamTimeout
from shared.models import JobStatus, WireFormat
from shared.tenant_cache import TenantSnapshot
from shared.wire.codec import OPENAI_CODEC
from tests.factories import make_chat_request

TENANT = TenantSnapshot(id="ten_1", name="relay")


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [],
                    "query_string": b""})


@pytest.mark.parametrize(("replayed", "status"), [(False, JobStatus.CANCELLED), (True, JobStatus.QUEUED)])
async def test_relay_deadline_cancels_only_the_owners_job(state: AppState, shard: ShardHandles, replayed: bool,
                                                          status: JobStatus) -> None:
    short = replace(state, settings=state.settings.model_copy(update={"request_timeout_s": 0.5}))
    chat = make_chat_request("gpt-4o")
    await shard.store.create("job_wait", TENANT.id, chat, WireFormat.OPENAI)
    await shard.queue.enqueue("job_wait")
    with pytest.raises(UpstreamTimeout):
        await respond(short, shard, _request(), TENANT, chat, Submission(job_id="job_wait", replayed=replayed),
                      OPENAI_CODEC)
    record = await shard.store.get("job_wait")
    assert record is not None and record.status is status
