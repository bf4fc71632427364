"""Prometheus metrics of the API and the workers, defined once. Labels come from closed sets only: tenant
ids, public model names from the routing table, provider names, target ids, status codes. The API serves
them from `/metrics` (aggregated across uvicorn processes when `PROMETHEUS_MULTIPROC_DIR` is set); each
worker process serves its own on `WORKER_METRICS_PORT`."""

import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

__all__ = [
    "ACTIVE_REQUESTS",
    "BREAKER_STATE",
    "BUDGET_REJECTIONS",
    "BUDGET_USED_RATIO",
    "CACHE_REQUESTS",
    "CONTENT_TYPE_LATEST",
    "COST_USD",
    "FALLBACKS",
    "GATEWAY_OVERHEAD",
    "JOBS",
    "PROVIDER_DURATION",
    "QUEUE_DEPTH",
    "QUEUE_WAIT",
    "RATE_LIMIT_REJECTIONS",
    "REQUESTS",
    "REQUEST_DURATION",
    "TIME_TO_FIRST_TOKEN",
    "TOKENS",
    "WEBHOOK_DELIVERIES",
    "WORKERS",
    "WORKER_JOBS_RUNNING",
    "mark_process_dead",
    "render_metrics",
    "serve_worker_metrics",
]

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# API side
REQUESTS = Counter("llm_gateway_requests", "Completion requests answered by the API",
                   ["tenant", "model", "provider", "status"])
REQUEST_DURATION = Histogram("llm_gateway_request_duration_seconds", "Total time of a completion request in the API",
                             ["model", "stream"], buckets=LATENCY_BUCKETS)
GATEWAY_OVERHEAD = Histogram("llm_gateway_overhead_seconds",
                             "Time the gateway added to a request: total minus provider time", ["model"],
                             buckets=FAST_BUCKETS)
ACTIVE_REQUESTS = Gauge("llm_gateway_active_requests", "Completion requests in progress in the API",
                        multiprocess_mode="livesum")
CONNECTIONS_REFUSED = Counter("llm_gateway_connections_refused",
                              "Client connections refused with 503 because the API process had MAX_CONNECTIONS open")
CACHE_REQUESTS = Counter("llm_gateway_cache_requests", "Response cache lookups", ["tenant", "result"])
RATE_LIMIT_REJECTIONS = Counter("llm_gateway_rate_limit_rejections", "Requests refused by a rate limit",
                                ["tenant", "limit"])
BUDGET_USED_RATIO = Gauge("llm_gateway_budget_used_ratio",
                          "Share of the tenant's budget spent or reserved in the current period, at its last admission",
                          ["tenant"], multiprocess_mode="mostrecent")
BUDGET_REJECTIONS = Counter("llm_gateway_budget_rejections", "Requests refused by an exhausted budget", ["tenant"])
QUEUE_DEPTH = Gauge("llm_gateway_queue_depth", "Jobs waiting in the queue (read at scrape time)",
                    multiprocess_mode="mostrecent")
WORKERS = Gauge("llm_gateway_workers", "Workers with a recent heartbeat (read at scrape time)",
                multiprocess_mode="mostrecent")

# Worker side
JOBS = Counter("llm_gateway_jobs", "Jobs finished by workers", ["tenant", "model", "provider", "status"])
QUEUE_WAIT = Histogram("llm_gateway_queue_wait_seconds", "Time from enqueue to a worker starting the job",
                       buckets=FAST_BUCKETS)
PROVIDER_DURATION = Histogram("llm_gateway_provider_duration_seconds", "Time spent calling providers for a job",
                              ["provider"], buckets=LATENCY_BUCKETS)
TIME_TO_FIRST_TOKEN = Histogram("llm_gateway_time_to_first_token_seconds",
                                "Time from enqueue to the first streamed token", ["provider"],
                                buckets=LATENCY_BUCKETS)
TOKENS = Counter("llm_gateway_tokens", "Tokens processed", ["tenant", "model", "direction"])
COST_USD = Counter("llm_gateway_cost_usd", "Cost of answered jobs in USD", ["tenant"])
FALLBACKS = Counter("llm_gateway_fallbacks", "Jobs answered by a target other than the route's first", ["model"])
BREAKER_STATE = Gauge("llm_gateway_circuit_breaker_state", "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
                      ["target"], multiprocess_mode="max")
WORKER_JOBS_RUNNING = Gauge("llm_gateway_worker_jobs_running", "Jobs running in this worker process",
                            multiprocess_mode="livesum")
WEBHOOK_DELIVERIES = Counter("llm_gateway_webhook_deliveries",
                             "Webhook delivery attempts by outcome: delivered, retried, rejected (permanent "
                             "failure, dead-lettered) or exhausted (out of attempts, dead-lettered)", ["outcome"])


def render_metrics(multiprocess_dir: str | None) -> bytes:
    """The exposition text: across all API processes when a multiprocess directory is in use."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_process_dead(multiprocess_dir: str | None) -> None:
    """Drop this process's live gauges from the shared directory (uvicorn has no child-exit hook)."""
    if multiprocess_dir:
        multiprocess.mark_process_dead(os.getpid(), multiprocess_dir)  # type: ignore[no-untyped-call]


def serve_worker_metrics(port: int) -> bool:
    """Expose this worker's metrics on `port`; a taken port is logged, not fatal (the worker still works)."""
    if port <= 0:
        return False
    try:
        start_http_server(port)
    except OSError as exc:
        logger.warning("worker metrics not served: port %d unavailable (%s)", port, exc.strerror)
        return False
    return True
