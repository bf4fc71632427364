"""The token-counting job: Anthropic's `count_tokens` on the first Anthropic target of the route that can take
the request (as `/v1/messages` would send it, drops allowed alike), falling back to the next such target as a
chat call does. An OpenAI target is skipped: its count is tiktoken's, made in the API, and a count from another
tokenizer is not a fallback for this one. The count rides in `Completion.output`; the usage is zero, so the job
costs nothing. Called by `worker.endpoint_jobs`."""

from shared.endpoint import TokenCountOutput
from shared.endpoint_requests import CountTokensRequest
from shared.errors import GatewayError, ProviderNotConfigured
from shared.jobs import JobRecord
from shared.models import Completion
from shared.routing_table import Target
from shared.wire.capabilities import plan_target
from worker.deps import WorkerDeps
from worker.providers.base import Provider, TokenCountingProvider
from worker.routing import Served

COUNTING_PROVIDER = "anthropic"


async def run_count_tokens(deps: WorkerDeps, record: JobRecord,
                           targets: list[Target]) -> tuple[Completion, Served]:
    job = record.request
    if not isinstance(job, CountTokensRequest):
        raise GatewayError("internal error: a count_tokens job without a count_tokens request")
    request = job.request
    allowed = deps.routing_table.drop_params_for(request.model) | frozenset(record.drop_params)

    def refuse(target: Target) -> tuple[str, str] | None:
        if target.provider != COUNTING_PROVIDER:
            return "model", f"its target {target.provider}:{target.model} is counted by the API, not by a worker"
        return plan_target(request, target, allowed).refused

    async def invoke(provider: Provider, target: Target) -> Completion:
        if not isinstance(provider, TokenCountingProvider):  # refuse() admits Anthropic targets only: a bug
            raise ProviderNotConfigured(f"the {target.provider} adapter has no token counting")
        tokens = await provider.count_tokens(request, target, drop=plan_target(request, target, allowed).drop)
        return Completion(id="", model=target.model, provider=target.provider, content="",
                          output=TokenCountOutput(input_tokens=tokens))

    return await deps.router.call(targets, invoke, refuse=refuse)
