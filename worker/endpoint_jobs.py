"""Jobs of the non-chat kinds (embeddings, legacy completions): picks the kind's module by the job's
endpoint, runs it through the router (same retries, breakers and fallback as chat) and prices the answer into
the `JobOutcome` that `worker.jobs` commits as it commits a chat job's. Called by `worker.jobs` only for a
job whose request is not a chat request, so the chat path pays nothing for it."""

import time
from collections.abc import Awaitable, Callable

from shared.endpoint import Endpoint
from shared.errors import GatewayError, ModelNotFound
from shared.jobs import JobOutcome, JobRecord
from shared.metrics import PROVIDER_DURATION
from shared.models import Completion, JobStatus
from shared.routing_table import Target
from worker.count_tokens_job import run_count_tokens
from worker.deps import WorkerDeps
from worker.embeddings_job import run_embeddings
from worker.routing import Served
from worker.text_completion_job import run_text_completion

Runner = Callable[[WorkerDeps, JobRecord, list[Target]], Awaitable[tuple[Completion, Served]]]

RUNNERS: dict[Endpoint, Runner] = {
    Endpoint.EMBEDDINGS: run_embeddings,
    Endpoint.COMPLETIONS: run_text_completion,
    Endpoint.COUNT_TOKENS: run_count_tokens,
}
ID_PREFIXES = {Endpoint.COMPLETIONS: "cmpl-"}


async def execute_endpoint(deps: WorkerDeps, record: JobRecord) -> JobOutcome:
    """Run a non-chat job to its outcome; a failure raises a `GatewayError` (the job's edge records it)."""
    endpoint = record.endpoint
    runner = RUNNERS.get(endpoint)
    if runner is None:
        raise GatewayError(f"internal error: this worker runs no '{endpoint.value}' jobs")
    targets = deps.routing_table.targets_for(record.request.model)
    if not targets:
        raise ModelNotFound(f"The model '{record.request.model}' does not exist")
    started = time.monotonic()
    completion, served = await runner(deps, record, targets)
    provider_s = time.monotonic() - started
    PROVIDER_DURATION.labels(served.target.provider).observe(provider_s)
    completion = completion.model_copy(update={
        "id": f"{ID_PREFIXES.get(endpoint, '')}{record.id}", "created": int(record.created_at),
        "model": completion.model or served.target.model,
    })
    usage = completion.usage
    return JobOutcome(
        status=JobStatus.SUCCEEDED, completion=completion, cost_usd=deps.prices.cost_usd(completion.model, usage),
        fallback_used=served.fallback_used, provider=completion.provider, model=completion.model,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens, provider_ms=int(provider_s * 1000),
    )
