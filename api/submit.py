"""The sequence every completion route shares: check the model exists, record the job, enqueue it. The API
never calls a provider; a worker picks the job up."""

import uuid

from redis.exceptions import RedisError

from api.deps import AppState
from shared.errors import GatewayError, ModelNotFound, ServiceUnavailable
from shared.jobs import JobRecord
from shared.models import ChatRequest, WireFormat
from shared.tenant_cache import TenantSnapshot


async def submit_job(state: AppState, tenant: TenantSnapshot, request: ChatRequest, wire: WireFormat) -> JobRecord:
    if state.routing_table.targets_for(request.model) is None:
        raise ModelNotFound(f"The model '{request.model}' does not exist or is not routed by this gateway")
    job_id = f"job_{uuid.uuid4().hex}"
    record = await state.store.create(job_id, tenant.id, request, wire)
    try:
        await state.queue.enqueue(job_id)
    except RedisError as exc:
        await _fail_quietly(state, job_id, ServiceUnavailable("The job queue is unavailable"))
        raise ServiceUnavailable("The job queue is unavailable") from exc
    return record


async def _fail_quietly(state: AppState, job_id: str, error: GatewayError) -> None:
    try:
        await state.store.fail(job_id, error)
    except RedisError:
        return
