"""The embeddings job: one `embed` call on the first target of the route that serves embeddings (the routes
file's `endpoints`), falling back as chat does. Called by `worker.endpoint_jobs`."""

from shared.endpoint import Endpoint
from shared.endpoint_requests import EmbeddingRequest
from shared.errors import GatewayError, ProviderNotConfigured
from shared.jobs import JobRecord
from shared.models import Completion
from shared.routing_table import Target
from worker.deps import WorkerDeps
from worker.providers.base import EmbeddingProvider, Provider
from worker.routing import Served


async def run_embeddings(deps: WorkerDeps, record: JobRecord, targets: list[Target]) -> tuple[Completion, Served]:
    request = record.request
    if not isinstance(request, EmbeddingRequest):
        raise GatewayError("internal error: an embeddings job without an embeddings request")

    async def invoke(provider: Provider, target: Target) -> Completion:
        if not isinstance(provider, EmbeddingProvider):  # the routes file refuses such a target: a bug
            raise ProviderNotConfigured(f"the {target.provider} adapter has no embeddings")
        return await provider.embed(request, target)

    return await deps.router.call(targets, invoke, refuse=lambda target: target.refusal(Endpoint.EMBEDDINGS))

