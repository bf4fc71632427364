"""The worker's metrics label made-up model names and their breaker targets `other`: jobs for thousands of
names a client invented under a default route add no series (issue 12, item 6)."""

import secrets

from prometheus_client import REGISTRY

from shared.config import Settings
from shared.jobs import JobStore
from shared.metrics import metric_labels
from shared.models import WireFormat
from shared.pricing import load_price_table
from shared.routing_table import RoutingTable
from tests.factories import ScriptedProvider, make_chat_request, make_fake_redis
from worker.breaker import CircuitBreaker
from worker.deps import WorkerDeps
from worker.jobs import run_completion
from worker.routing import RetryPolicy, Router

JOBS = 300


def _series() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(sample.name, tuple(sorted(sample.labels.items())))
            for family in REGISTRY.collect() if family.name.startswith("llm_gateway_")
            for sample in family.samples}


async def _run_jobs(names: list[str]) -> None:
    redis = make_fake_redis()
    settings = Settings(_env_file=None, redis_url="redis://unused:6379")  # type: ignore[call-arg]
    table, prices = RoutingTable({}, use_defaults=True), load_price_table(settings)
    labels = metric_labels(table, prices.models())
    provider = ScriptedProvider("openai", {name: ["an answer"] for name in names})
    breaker = CircuitBreaker(redis, failure_threshold=100, open_s=1, target_label=labels.target)
    deps = WorkerDeps(settings=settings, redis=redis, store=JobStore(redis, ttl_s=600, events_maxlen=1000),
                      routing_table=table, router=Router({"openai": provider}, breaker, RetryPolicy(1, 0.0, 0.0)),
                      prices=prices, worker_id="worker-test", metric_labels=labels)
    for index, name in enumerate(names):
        job_id = f"job_{index}"
        await deps.store.create(job_id, "ten_1", make_chat_request(name), WireFormat.OPENAI)
        assert await run_completion({"deps": deps, "job_try": 1, "job_id": job_id}, job_id) == "succeeded"


async def test_worker_metrics_series_stay_flat_when_jobs_name_made_up_models() -> None:
    await _run_jobs([f"gpt-{secrets.token_hex(8)}" for _ in range(3)])
    before = _series()
    await _run_jobs([f"gpt-{secrets.token_hex(240)}" for _ in range(JOBS)])
    assert _series() - before == set()


async def test_worker_metrics_keep_configured_model_names() -> None:
    await _run_jobs(["gpt-4o-mini", f"gpt-{secrets.token_hex(8)}"])
    jobs = {dict(labels)["model"] for name, labels in _series() if name == "llm_gateway_jobs_total"}
    targets = {dict(labels)["target"] for name, labels in _series()
               if name == "llm_gateway_circuit_breaker_state"}
    assert {"gpt-4o-mini", "other"} <= jobs
    assert any(target.startswith("openai:gpt-4o-mini:") for target in targets) and "other" in targets
