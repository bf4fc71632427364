"""Everything a job needs, built once per worker process in `on_startup` and kept at `ctx["deps"]`; and what
the process opened beside the jobs, kept at `ctx["resources"]` for `on_shutdown` to close. arq hands hooks
only its `ctx` dict, so each lives under one key and is read back through one typed accessor."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis

from shared.budget_alert_check import SentLog
from shared.config import Settings
from shared.jobs import JobStore
from shared.metrics import MetricLabels
from shared.metrics_server import MetricsServer
from shared.pricing import PriceTable
from shared.routing_table import RoutingTable
from worker.providers.base import Provider
from worker.routing import Router

if TYPE_CHECKING:  # worker.usage_writer and worker.retention import nothing from here; only their types
    from worker.retention import PruneRows
    from worker.usage_writer import InsertRows


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
    # The database's record of budget-alert thresholds sent (shared/budget_alert_check.py). None only where a
    # worker is built without a database (unit tests of jobs): budget alerts are then not checked.
    sent_log: SentLog | None = None


def deps_from(ctx: dict[str, Any]) -> WorkerDeps:
    deps = ctx["deps"]
    if not isinstance(deps, WorkerDeps):
        raise RuntimeError("worker context has no WorkerDeps; on_startup did not run")
    return deps


@dataclass
class ProcessResources:
    """What every arq worker of one process shares, whichever Redis shard it serves (worker/shards.py): the
    providers and their HTTP connection pools, the routes and prices, the database sink of usage records, and
    the metrics listener. Built once per process; one arq worker on a single Redis builds its own."""

    routing_table: RoutingTable
    prices: PriceTable
    metric_labels: MetricLabels
    providers: dict[str, Provider]
    insert_rows: "InsertRows"
    prune_rows: "PruneRows"
    sent_log: SentLog
    close_usage_sink: Callable[[], Awaitable[None]]
    metrics_server: MetricsServer | None = None


@dataclass
class WorkerResources:
    """Opened by `on_startup`, closed by `on_shutdown`: background tasks end when `stop` is set; the process's
    shared resources are closed by whoever opened them (`owns_process`)."""

    stop: asyncio.Event
    background: list[asyncio.Task[None]]
    process: ProcessResources
    owns_process: bool = True


def resources_from(ctx: dict[str, Any]) -> WorkerResources | None:
    """None when `on_startup` did not get as far as opening them."""
    resources = ctx.get("resources")
    return resources if isinstance(resources, WorkerResources) else None
