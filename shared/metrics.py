"""Prometheus metrics of the API and the workers, defined once, and the closed sets their labels come from.
Every label value is from a set the operator configured or the code fixes, never from what a client sent:
tenant ids (only once authenticated), model names through `MetricLabels.model`, breaker targets through
`MetricLabels.target`, providers, endpoints (`shared.endpoint.Endpoint`), status codes and outcomes. The
listeners are in `shared.metrics_server`."""

import os
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from shared.routing_table import RoutingTable

__all__ = [
    "ACTIVE_REQUESTS",
    "BREAKER_STATE",
    "BUDGET_REJECTIONS",
    "BUDGET_USED_RATIO",
    "CACHE_REQUESTS",
    "COST_USD",
    "FALLBACKS",
    "GATEWAY_OVERHEAD",
    "JOBS",
    "OTHER",
    "PROVIDER_DURATION",
    "QUEUE_DEPTH",
    "QUEUE_WAIT",
    "RATE_LIMIT_REJECTIONS",
    "REDIS_SHARD_UP",
    "REQUESTS",
    "REQUEST_DURATION",
    "TARGETS_SKIPPED",
    "TIME_TO_FIRST_TOKEN",
    "TOKENS",
    "USAGE_BACKLOG",
    "USAGE_GROUP_RECREATED",
    "USAGE_LAST_FLUSH",
    "USAGE_OLDEST_UNWRITTEN",
    "WEBHOOK_DELIVERIES",
    "WORKERS",
    "WORKER_JOBS_RUNNING",
    "MetricLabels",
    "mark_process_dead",
    "metric_labels",
    "metrics_registry",
]

# The one label value for everything outside a closed set; "unknown" (no model: refused before routing) and
# "unauthenticated" (no tenant) are the other fixed ones.
OTHER = "other"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# API side
# `endpoint` (chat, embeddings, completions, count_tokens) on the request, job, token and cost series: an
# embedding takes milliseconds and costs a millionth of a chat answer, so mixed they hide each other. Four
# closed values, and a model is mostly served for one endpoint, so the series grow by little.
REQUESTS = Counter("llm_gateway_requests", "Provider-bound requests answered by the API",
                   ["tenant", "model", "provider", "status", "endpoint"])
REQUEST_DURATION = Histogram("llm_gateway_request_duration_seconds",
                             "Total time of a provider-bound request in the API", ["model", "stream", "endpoint"],
                             buckets=LATENCY_BUCKETS)
GATEWAY_OVERHEAD = Histogram("llm_gateway_overhead_seconds",
                             "Time the gateway added to a request: total minus provider time", ["model"],
                             buckets=FAST_BUCKETS)
ACTIVE_REQUESTS = Gauge("llm_gateway_active_requests", "Completion requests in progress in the API",
                        multiprocess_mode="livesum")
CONNECTIONS_REFUSED = Counter("llm_gateway_connections_refused",
                              "Client connections refused with 503 because the API process had MAX_CONNECTIONS open")
CACHE_REQUESTS = Counter("llm_gateway_cache_requests", "Response cache lookups", ["tenant", "result", "endpoint"])
RATE_LIMIT_REJECTIONS = Counter("llm_gateway_rate_limit_rejections", "Requests refused by a rate limit",
                                ["tenant", "limit"])
BUDGET_USED_RATIO = Gauge("llm_gateway_budget_used_ratio",
                          "Share of the tenant's budget spent or reserved in the current period, at its last admission",
                          ["tenant"], multiprocess_mode="mostrecent")
BUDGET_REJECTIONS = Counter("llm_gateway_budget_rejections", "Requests refused by an exhausted budget", ["tenant"])
# By Redis shard (`shard`: its number in REDIS_SHARDS, "0" with one Redis; docs/SHARDING.md). Sum over shards
# (`sum(max by (shard) (...))`) for the whole gateway: every API process reports every shard.
QUEUE_DEPTH = Gauge("llm_gateway_queue_depth", "Jobs waiting in the queue (read at scrape time)", ["shard"],
                    multiprocess_mode="mostrecent")
WORKERS = Gauge("llm_gateway_workers", "Workers with a recent heartbeat (read at scrape time)", ["shard"],
                multiprocess_mode="mostrecent")
REDIS_SHARD_UP = Gauge("llm_gateway_redis_shard_up", "1 when the Redis shard answered at scrape time, else 0",
                       ["shard"], multiprocess_mode="mostrecent")

# Worker side
JOBS = Counter("llm_gateway_jobs", "Jobs finished by workers", ["tenant", "model", "provider", "status", "endpoint"])
QUEUE_WAIT = Histogram("llm_gateway_queue_wait_seconds", "Time from enqueue to a worker starting the job",
                       buckets=FAST_BUCKETS)
PROVIDER_DURATION = Histogram("llm_gateway_provider_duration_seconds", "Time spent calling providers for a job",
                              ["provider"], buckets=LATENCY_BUCKETS)
TIME_TO_FIRST_TOKEN = Histogram("llm_gateway_time_to_first_token_seconds",
                                "Time from enqueue to the first streamed token", ["provider"],
                                buckets=LATENCY_BUCKETS)
TOKENS = Counter("llm_gateway_tokens", "Tokens processed", ["tenant", "model", "direction", "endpoint"])
COST_USD = Counter("llm_gateway_cost_usd", "Cost of answered jobs in USD", ["tenant", "endpoint"])
FALLBACKS = Counter("llm_gateway_fallbacks", "Jobs answered by a target other than the route's first", ["model"])
BREAKER_STATE = Gauge("llm_gateway_circuit_breaker_state", "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
                      ["target"], multiprocess_mode="max")
WORKER_JOBS_RUNNING = Gauge("llm_gateway_worker_jobs_running", "Jobs running in this worker process",
                            multiprocess_mode="livesum")
TARGETS_SKIPPED = Counter("llm_gateway_targets_skipped",
                          "Route targets a worker skipped because the request has a parameter they cannot honour "
                          "and dropping it was not allowed; `param` is a modelled parameter name or `other`",
                          ["provider", "param"])
# Billing: set by each worker's usage writer (worker/usage_writer.py); the API exports them as 0, so use max().
USAGE_BACKLOG = Gauge("llm_gateway_usage_backlog", "Usage records in Redis not yet written to the database",
                      multiprocess_mode="max")
USAGE_OLDEST_UNWRITTEN = Gauge("llm_gateway_usage_oldest_unwritten_seconds",
                               "Age of the oldest usage record not yet written to the database (0: none waits)",
                               multiprocess_mode="max")
USAGE_LAST_FLUSH = Gauge("llm_gateway_usage_last_flush_timestamp_seconds",
                         "Unix time at which this worker's usage writer last completed a flush",
                         multiprocess_mode="max")
USAGE_GROUP_RECREATED = Counter("llm_gateway_usage_group_recreated",
                                "Times a usage writer found the usage stream's consumer group gone (Redis lost "
                                "its data: restart without persistence, flush, eviction) and created it again")
WEBHOOK_DELIVERIES = Counter("llm_gateway_webhook_deliveries",
                             "Webhook delivery attempts by outcome: delivered, retried, rejected (permanent "
                             "failure, dead-lettered) or exhausted (out of attempts, dead-lettered)", ["outcome"])


@dataclass(frozen=True)
class MetricLabels:
    """The closed sets of model names and breaker target ids that may become label values. Without them a
    default route (`gpt-*`, `claude-*`) turns every name a client makes up into new series: 4,000 random
    names grew the API's exposition from 8 KB to 48.5 MB. Empty sets (the default) label all as `other`."""

    models: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()

    def model(self, name: str) -> str:
        return name if name in self.models else OTHER

    def target(self, target_id: str) -> str:
        return target_id if target_id in self.targets else OTHER


def metric_labels(routing_table: RoutingTable, priced_models: Iterable[str]) -> MetricLabels:
    """The models a label may name: every public model of the routing table (explicit routes, the default
    list) and every priced model that the table routes (with default routing, the `gpt-*`, `o*` and
    `claude-*` names of the price table); and the targets those models route to."""
    models = set(routing_table.public_models())
    models.update(name for name in priced_models if routing_table.targets_for(name))
    targets = {target.target_id for name in models for target in routing_table.targets_for(name) or []}
    return MetricLabels(frozenset(models), frozenset(targets))


def metrics_registry(multiprocess_dir: str | None) -> CollectorRegistry:
    """What a scrape shows: all API processes added up when a multiprocess directory is in use (read from
    their files at each scrape), else this process's metrics."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def mark_process_dead(multiprocess_dir: str | None) -> None:
    """Drop this process's live gauges from the shared directory (uvicorn has no child-exit hook)."""
    if multiprocess_dir:
        multiprocess.mark_process_dead(os.getpid(), multiprocess_dir)  # type: ignore[no-untyped-call]
