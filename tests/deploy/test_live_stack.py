"""The compose stack, for real: Redis, PostgreSQL, migrations, the API, two workers, the fake provider and
Prometheus in containers (stand-in base images where no registry answers), built and started the way the
README says, then used through the API with the official SDKs. The tests run in order: the last one stops
and restarts the whole stack."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.deploy.compose_stack import WORKERS, ComposeStack, wait_for
from tests.deploy.docker_host import DockerHost, PhaseLog, run

pytestmark = pytest.mark.timeout(1800)
# Reads 0.5 s apart that must agree before a usage count is taken as settled (the writer flushes every 1 s).
SETTLE_READS = 7


@dataclass(frozen=True)
class Tenant:
    id: str
    key: str


@pytest.fixture(scope="module")
def stack(docker_host: DockerHost, gateway_image: str, phases: PhaseLog) -> Iterator[ComposeStack]:
    stack = ComposeStack(docker_host)
    try:
        with phases.phase(f"compose up --build --scale worker={WORKERS}"):
            stack.up("--build")
        with phases.phase("stack healthy (GET /health 200)"):
            stack.wait_healthy()
        yield stack
    finally:
        with phases.phase("compose down"):
            stack.down()


@pytest.fixture(scope="module")
def tenant(stack: ComposeStack) -> Tenant:
    created = stack.admin("POST", "/api/v1/admin/tenants", json={"name": "live-stack", "rate_limit": 1000})
    assert created.status_code == 201, created.text
    return Tenant(id=created.json()["id"], key=created.json()["api_key"])


def test_every_service_runs_and_the_image_healthcheck_passes(stack: ComposeStack, phases: PhaseLog) -> None:
    assert len(stack.containers("worker")) == WORKERS
    gateway = [*stack.containers("api"), *stack.containers("worker"), *stack.containers("fake-provider")]

    def all_healthy() -> bool | None:
        states = run([stack.host.docker, "inspect", "--format", "{{.State.Health.Status}}", *gateway]).stdout.split()
        return all(state == "healthy" for state in states) or None

    with phases.phase("image HEALTHCHECK healthy in api, workers, fake provider"):
        wait_for(all_healthy, 120, lambda: stack.compose("ps"))


def test_completion_and_streams_through_the_official_sdks(stack: ComposeStack, tenant: Tenant) -> None:
    client = openai.OpenAI(base_url=f"{stack.api.base_url}/v1", api_key=tenant.key, max_retries=0)
    messages: Any = [{"role": "user", "content": "hello from a container"}]
    completion = client.chat.completions.create(model="demo", messages=messages)
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens > 0

    chunks = list(client.chat.completions.create(model="demo", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content

    claude = anthropic.Anthropic(base_url=str(stack.api.base_url), api_key=tenant.key, max_retries=0)
    with claude.messages.stream(model="demo-claude", max_tokens=50, messages=messages) as stream:
        streamed = "".join(stream.text_stream)
    assert streamed and streamed.split()[0] == "Fake"


def test_submitted_jobs_are_polled_to_the_end_on_both_workers(stack: ComposeStack, tenant: Tenant) -> None:
    workers: set[str] = set()
    for _ in range(3):  # the scheduler decides who picks; a few rounds of slow jobs reach both workers
        ids = [stack.submit(tenant.key, "slow-1500", f"job {n}") for n in range(8)]
        for job_id in ids:
            job = stack.wait_job(tenant.key, job_id, lambda j: j["status"] in {"succeeded", "failed"})
            assert job["status"] == "succeeded", job
            assert job["result"]["choices"][0]["message"]["content"]
            workers.add(job["worker"])
        if len(workers) == WORKERS:
            break
    assert len(workers) == WORKERS, workers


def test_a_worker_killed_mid_job_and_the_job_still_finishes(stack: ComposeStack, tenant: Tenant,
                                                            phases: PhaseLog) -> None:
    job_id = stack.submit(tenant.key, "slow-8000", "survive a kill")
    running = stack.wait_job(tenant.key, job_id, lambda j: j["status"] == "running")
    victim = stack.worker_container_of(running["worker"])
    run([stack.host.docker, "kill", victim])
    with phases.phase("job finished after its worker was killed"):
        job = stack.wait_job(tenant.key, job_id, lambda j: j["status"] in {"succeeded", "failed"}, timeout_s=180)
    assert job["status"] == "succeeded", job
    assert job["attempt"] >= 2 and job["worker"] != running["worker"], job
    stack.up("--no-recreate")  # the killed worker comes back
    wait_for(lambda: len(stack.containers("worker")) == WORKERS or None, 60, lambda: stack.compose("ps"))


def test_prometheus_scrapes_the_api_and_every_worker(stack: ComposeStack, phases: PhaseLog) -> None:
    def scraped() -> dict[str, int] | None:
        targets = stack.prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
        up = {job: sum(1 for t in targets if t["labels"]["job"] == job and t["health"] == "up")
              for job in ("llm-gateway-api", "llm-gateway-worker")}
        return up if up == {"llm-gateway-api": 1, "llm-gateway-worker": WORKERS} else None

    with phases.phase("Prometheus scrapes api and both workers"):
        wait_for(scraped, 120, lambda: stack.prometheus.get("/api/v1/targets").text[:3000])
    result = stack.prometheus.get("/api/v1/query", params={"query": "sum(llm_gateway_requests_total)"}).json()
    assert result["status"] == "success" and float(result["data"]["result"][0]["value"][1]) > 0, result


def test_stop_drains_and_a_restart_keeps_tenants_jobs_and_usage(stack: ComposeStack, tenant: Tenant,
                                                               phases: PhaseLog) -> None:
    before = usage_requests(stack, tenant, at_least=1)
    job_id = stack.submit(tenant.key, "slow-8000", "finish while draining")
    stack.wait_job(tenant.key, job_id, lambda j: j["status"] == "running")
    workers = stack.containers("worker")
    with phases.phase("compose stop (workers drain)"):
        stack.compose("stop")
    exits = run([stack.host.docker, "inspect", "--format", "{{.State.ExitCode}}", *workers]).stdout.split()
    assert exits == ["0"] * WORKERS, stack.logs("worker")
    assert "stopped" in stack.logs("worker")

    with phases.phase("compose up again (restart)"):
        stack.up()
        stack.wait_healthy()
    job = stack.job(tenant.key, job_id)
    assert job["status"] == "succeeded" and job["attempt"] == 1, job  # drained, not re-run
    models = stack.api.get("/v1/models", headers={"Authorization": f"Bearer {tenant.key}"})
    assert models.status_code == 200, models.text  # the tenant and its key survived
    assert usage_requests(stack, tenant, at_least=before + 1) == before + 1  # the drained job, billed once


def usage_requests(stack: ComposeStack, tenant: Tenant, at_least: int) -> int:
    """The tenant's request count in PostgreSQL once the batched usage writer has caught up: at least
    `at_least`, and unchanged over a few flush intervals."""
    seen: list[int] = []

    def settled() -> int | None:
        answer = stack.admin("GET", f"/api/v1/admin/tenants/{tenant.id}/usage", params={"days": 1})
        assert answer.status_code == 200, answer.text
        seen.append(int(answer.json()["totals"]["requests"]))
        stable = len(seen) >= SETTLE_READS and len(set(seen[-SETTLE_READS:])) == 1
        return seen[-1] if stable and seen[-1] >= at_least else None

    return wait_for(settled, 90, lambda: f"usage counts {seen}\n{stack.logs('worker')}")
