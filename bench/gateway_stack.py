"""The systems the gateway benchmark compares, started as real processes: the fake upstream in two profiles,
the gateway as deployed (`llm-gateway serve` + `llm-gateway worker` on Redis and a fresh PostgreSQL
database, a tenant made through the admin API), and the LiteLLM proxy from its own virtualenv."""

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import redis

from bench.gateway_proc import Child, Children, process_tree, wait_http

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/9"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DB = "llm_gateway_bench_gateway"
ADMIN_KEY = "bench-admin-key"
UPSTREAM_KEY = "x"
PROFILES = {
    "instant": ["--tokens", "16"],
    "realistic": ["--latency-ms", "200", "--tokens", "50", "--inter-token-ms", "10"],
}
GATEWAY_MODELS = {profile: f"bench-{profile}" for profile in PROFILES}
LITELLM_INSTALL_TIMEOUT_S = 900
LITELLM_START_TIMEOUT_S = 120
# Variables of the gateway (or of a shell) that LiteLLM would also read and that must not reach it.
LITELLM_ENV_DROP = ("DATABASE_URL", "REDIS_URL", "REDIS_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class System:
    """One system under test as the load generator sees it: where to send, with which headers and model
    per upstream profile, and which processes' CPU to read (by group)."""

    name: str
    url: str
    headers: dict[str, str]
    models: dict[str, str]
    pid_groups: dict[str, list[int]] = field(default_factory=dict)
    pg_database: str | None = None
    metrics_urls: list[str] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)

    def alive(self) -> bool:
        return all(child.alive() for child in self.children)


@dataclass
class Upstreams:
    urls: dict[str, str]
    children: dict[str, Child]

    def pids(self) -> list[int]:
        return [child.pid for child in self.children.values()]


def start_upstreams(children: Children, profiles: dict[str, list[str]] | None = None) -> Upstreams:
    urls, procs = {}, {}
    for profile, flags in (PROFILES if profiles is None else profiles).items():
        port = free_port()
        procs[profile] = children.start(f"upstream-{profile}", [*_gateway_cli(), "fake-provider", "--port",
                                                                 str(port), *flags], _base_env())
        urls[profile] = f"http://127.0.0.1:{port}"
    for profile, child in procs.items():
        wait_http(f"{urls[profile]}/_stats", child)
    return Upstreams(urls, procs)


def direct_systems(upstreams: Upstreams) -> dict[str, System]:
    """The fake upstream itself, per profile (each profile is its own process)."""
    return {profile: System("direct", f"{url}/v1/chat/completions", {"Authorization": f"Bearer {UPSTREAM_KEY}"},
                            {profile: "fake-model"}, {"upstream": upstreams.pids()},
                            children=[upstreams.children[profile]])
            for profile, url in upstreams.urls.items()}


def _gateway_cli() -> list[str]:
    script = Path(sys.executable).parent / "llm-gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def _base_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@dataclass
class Gateway:
    """The deployed gateway: one API process, its workers, and what the load generator needs."""

    children: Children
    env: dict[str, str]
    url: str
    api: Child
    workers: list[Child]
    metrics_urls: list[str]
    redis_pid: int | None
    tenant_key: str = ""

    def start_worker(self) -> None:
        port = free_port()
        name = f"gateway-worker-{len(self.workers) + 1}"
        worker = self.children.start(name, [*_gateway_cli(), "worker"], {**self.env, "WORKER_METRICS_PORT": str(port)},
                                     cwd=REPO)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http(url, worker)
        self.workers.append(worker)
        self.metrics_urls.append(url)

    def stop_last_worker(self) -> None:
        self.children.stop(self.workers.pop())
        self.metrics_urls.pop()

    def system(self, name: str, upstreams: Upstreams, headers: dict[str, str]) -> System:
        groups = {"api": process_tree(self.api.pid), "worker": [w.pid for w in self.workers],
                  "upstream": upstreams.pids()}
        if self.redis_pid is not None:
            groups["redis"] = [self.redis_pid]
        return System(name, f"{self.url}/v1/chat/completions", {"X-API-Key": self.tenant_key, **headers},
                      dict(GATEWAY_MODELS), groups, BENCH_DB, list(self.metrics_urls),
                      [self.api, *self.workers])


async def _recreate_database(drop_only: bool = False, database: str = BENCH_DB) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if not drop_only:
            await conn.execute(f"CREATE DATABASE {database}")
    finally:
        await conn.close()


def drop_database(database: str = BENCH_DB) -> None:
    asyncio.run(_recreate_database(drop_only=True, database=database))


def flush_redis(url: str = REDIS_URL) -> None:
    redis.Redis.from_url(url).flushdb()


def redis_pid(url: str = REDIS_URL) -> int | None:
    """The local Redis server's pid, when its /proc entry is readable (it is shared with other users)."""
    pid = int(redis.Redis.from_url(url).info("server")["process_id"])
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def start_gateway(children: Children, upstreams: Upstreams, work_dir: Path, *, redis_url: str = REDIS_URL,
                  database: str = BENCH_DB, models: dict[str, str] | None = None,
                  extra_env: dict[str, str] | None = None, routes_yaml: str | None = None) -> Gateway:
    """`models` maps each upstream profile to its public model name (default GATEWAY_MODELS); the other
    keywords let a second harness (the soak) run on its own Redis db and database, or (`routes_yaml`, the
    whole routes file) another one route to other targets."""
    models = GATEWAY_MODELS if models is None else models
    flush_redis(redis_url)
    asyncio.run(_recreate_database(database=database))
    routes = work_dir / "routes.yaml"
    routes.write_text(routes_yaml if routes_yaml is not None else "models:\n" + "".join(
        f'  {models[p]}:\n    - {{provider: openai, model: fake-model, base_url: "{url}/v1"}}\n'
        for p, url in upstreams.urls.items()))
    env = {**_base_env(), "REDIS_URL": redis_url, "ADMIN_API_KEY": ADMIN_KEY, "ROUTES_FILE": str(routes),
           "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
           "QUEUE_NAME": f"gw:bench:{uuid.uuid4().hex[:8]}", "OPENAI_API_KEY": UPSTREAM_KEY, "LOG_LEVEL": "WARNING",
           **(extra_env or {})}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    migrate = subprocess.run([*_gateway_cli(), "migrate"], env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=120)
    if migrate.returncode != 0:
        raise RuntimeError(f"llm-gateway migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
    port = free_port()
    api = children.start("gateway-api", [*_gateway_cli(), "serve", "--port", str(port)], env, cwd=REPO)
    gateway = Gateway(children, env, f"http://127.0.0.1:{port}", api, [], [], redis_pid(redis_url))
    gateway.start_worker()
    wait_http(f"{gateway.url}/health", api)  # healthy once a worker has sent its heartbeat
    gateway.tenant_key = create_tenant(gateway.url)
    return gateway


def create_tenant(url: str, prefix: str = "bench", rate_limit: int = 0) -> str:
    """A tenant (default: rate_limit 0, unlimited) with no budget, made through the admin API; its key."""
    return str(create_tenant_record(url, prefix, rate_limit)["api_key"])


def create_tenant_record(url: str, prefix: str = "bench", rate_limit: int = 0) -> dict[str, object]:
    """As `create_tenant`, but the whole answer (tenant id, limits and the key)."""
    response = httpx.post(f"{url}/api/v1/admin/tenants", params={"name": f"{prefix}-{uuid.uuid4().hex[:8]}",
                                                                  "rate_limit": rate_limit},
                          headers={"X-API-Key": ADMIN_KEY}, timeout=10)
    if response.status_code != 201:
        raise RuntimeError(f"tenant creation failed: {response.status_code} {response.text[:300]}")
    return dict(response.json())


@dataclass
class LiteLLMSetup:
    venv: Path
    version: str | None = None
    problem: str | None = None
    install_s: float | None = None


def ensure_litellm(venv: Path, log_dir: Path) -> LiteLLMSetup:
    """Install `litellm[proxy]` from PyPI into its own virtualenv unless it is there already."""
    setup = LiteLLMSetup(venv)
    if not (venv / "bin" / "litellm").exists():
        started = time.monotonic()
        python3 = shutil.which("python3") or sys.executable
        with (log_dir / "litellm-install.log").open("wb") as log:
            for argv in ([python3, "-m", "venv", str(venv)],
                         [str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"]):
                try:
                    code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                                          timeout=LITELLM_INSTALL_TIMEOUT_S).returncode
                except (OSError, subprocess.TimeoutExpired) as exc:
                    setup.problem = f"{' '.join(argv[:3])}: {exc}"
                    return setup
                if code != 0:
                    setup.problem = f"{' '.join(argv[:3])} exited {code}; see litellm-install.log"
                    return setup
        setup.install_s = time.monotonic() - started
    version = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=60)
    if version.returncode != 0:
        setup.problem = f"litellm not importable: {version.stderr.strip()[-300:]}"
    else:
        setup.version = version.stdout.strip()
    return setup


def litellm_config(upstreams: Upstreams, master_key: str) -> str:
    models = "".join(
        f"  - model_name: {GATEWAY_MODELS[p]}\n    litellm_params:\n      model: openai/fake-model\n"
        f"      api_base: {url}/v1\n      api_key: {UPSTREAM_KEY}\n" for p, url in upstreams.urls.items())
    # Recent LiteLLM versions refuse to start without a master key; with one, clients send it as a bearer token.
    return (f"model_list:\n{models}litellm_settings:\n  set_verbose: false\n  suppress_debug_info: true\n"
            f"general_settings:\n  master_key: {master_key}\n")


@dataclass
class LiteLLMLaunch:
    child: Child
    url: str
    master_key: str


def launch_litellm(children: Children, setup: LiteLLMSetup, upstreams: Upstreams, work_dir: Path) -> LiteLLMLaunch:
    """Start one LiteLLM proxy process (no database, quiet logs) without waiting for it: it takes seconds to
    import, which overlap the gateway's start."""
    master_key = f"sk-bench-{secrets.token_hex(16)}"
    config = work_dir / "litellm.yaml"
    config.write_text(litellm_config(upstreams, master_key))
    env = {k: v for k, v in _base_env().items() if k not in LITELLM_ENV_DROP}
    env.update({"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    port = free_port()
    argv = [str(setup.venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]
    return LiteLLMLaunch(children.start("litellm", argv, env, cwd=work_dir), f"http://127.0.0.1:{port}", master_key)


def litellm_system(launch: LiteLLMLaunch, upstreams: Upstreams) -> System:
    """Wait until LiteLLM is up; raises RuntimeError (with its log tail) when it is not."""
    wait_http(f"{launch.url}/health/liveliness", launch.child, timeout_s=LITELLM_START_TIMEOUT_S)
    groups = {"litellm": process_tree(launch.child.pid), "upstream": upstreams.pids()}
    return System("litellm", f"{launch.url}/v1/chat/completions", {"Authorization": f"Bearer {launch.master_key}"},
                  dict(GATEWAY_MODELS), groups, children=[launch.child])


def smoke_test(system: System, profile: str) -> str | None:
    """One plain and one streamed request; the problem, or None when both answered 200 with content."""
    body = {"model": system.models[profile], "messages": [{"role": "user", "content": "smoke test"}]}
    try:
        plain = httpx.post(system.url, json=body, headers=system.headers, timeout=30)
        streamed = httpx.post(system.url, json={**body, "stream": True, "stream_options": {"include_usage": True}},
                              headers=system.headers, timeout=30)
    except httpx.HTTPError as exc:
        return f"{system.name} {profile}: {exc!r}"
    checks = (("plain", plain, "Fake reply"), ("stream", streamed, "data: [DONE]"))
    for kind, response, needle in checks:
        if response.status_code != 200 or needle not in response.text:
            return f"{system.name} {profile} {kind}: HTTP {response.status_code} {response.text[:200]}"
    return None
