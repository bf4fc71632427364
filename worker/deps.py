"""Everything a job needs, built once per worker process in `on_startup` and kept at `ctx["deps"]`."""

from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis

from shared.config import Settings
from shared.jobs import JobStore
from shared.metrics import MetricLabels
from shared.pricing import PriceTable
from shared.routing_table import RoutingTable
from worker.routing import Router


@dataclass
class WorkerDeps:
    settings: Settings
    redis: ArqRedis
    store: JobStore
    routing_table: RoutingTable
    router: Router
    prices: PriceTable
    worker_id: str
    # Label values for model names (configured ones; anything else `other`): see shared.metrics.
    metric_labels: MetricLabels = field(default_factory=MetricLabels)


def deps_from(ctx: dict[str, Any]) -> WorkerDeps:
    deps = ctx["deps"]
    if not isinstance(deps, WorkerDeps):
        raise RuntimeError("worker context has no WorkerDeps; on_startup did not run")
    return deps
