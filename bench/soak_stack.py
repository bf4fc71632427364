"""The soak test's own deployment and its readings, built on the gateway benchmark's plumbing
(`bench.gateway_stack`, `bench.gateway_proc`) so both start processes the same way.

Its own Redis db (12: tests and the other benchmarks use 2, 3, 6, 9 and 11) and its own PostgreSQL database,
so the soak can run beside them. Job records and cache entries expire after 2 minutes instead of a day, so
Redis reaches a steady state inside a 10-minute run instead of growing by design. Also here: RSS sampling of
every process, the wait for the usage writer to drain, and the read of the usage table."""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bench.gateway_proc import Children, postgres_backends, proc_status_kb, process_tree
from bench.gateway_stack import (
    Gateway,
    create_tenant_record,
    drop_database,
    flush_redis,
    start_gateway,
    start_upstreams,
)
from bench.soak_checks import UsageRow
from bench.soak_traffic import Tenant

REDIS_URL = "redis://127.0.0.1:6379/12"
DATABASE = "llm_gateway_soak"
PG_DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
MODEL = "soak-model"
PROFILE = "soak"
UPSTREAM_FLAGS = ["--latency-ms", "20", "--tokens", "20", "--inter-token-ms", "2"]
GATEWAY_ENV = {"JOB_TTL_S": "120", "CACHE_TTL": "120"}
WORKERS = 2
NORMAL_TENANTS = 4
USAGE_STREAM, USAGE_DEAD_STREAM = "gw:usage", "gw:usage:dead"  # shared/keys.py
CHECKED_GROUPS = ("api", "worker", "upstream")  # RSS judged flat; redis and postgres only reported


@dataclass
class Stack:
    children: Children
    gateway: Gateway
    upstream_pid: int
    tenants: list[Tenant]
    cache_tenant: Tenant
    limited_tenant: Tenant
    limited_rpm: int

    def processes(self) -> dict[str, int]:
        """Name -> pid of every process whose RSS is sampled (the Redis server when its /proc is readable)."""
        api = process_tree(self.gateway.api.pid)
        named = {("api" if i == 0 else f"api-child-{i}"): pid for i, pid in enumerate(api)}
        named.update({f"worker-{i + 1}": w.pid for i, w in enumerate(self.gateway.workers)})
        named["upstream"] = self.upstream_pid
        if self.gateway.redis_pid is not None:
            named["redis-server"] = self.gateway.redis_pid
        return named

    def dead(self) -> list[str]:
        return [child.name for child in self.children.items if not child.alive()]


def limited_rpm_for(rate: float, share: float) -> int:
    """The rate-limited tenant's requests per minute: 30, or less when its share of the traffic would not
    reach three times that, so it is always driven well above its limit."""
    offered_per_min = rate * share * 60
    return max(2, min(30, int(offered_per_min / 3)))


def start(children: Children, work_dir: Path, rate: float, limited_share: float) -> Stack:
    upstreams = start_upstreams(children, {PROFILE: UPSTREAM_FLAGS})
    gateway = start_gateway(children, upstreams, work_dir, redis_url=REDIS_URL, database=DATABASE,
                            models={PROFILE: MODEL}, extra_env=GATEWAY_ENV)
    while len(gateway.workers) < WORKERS:
        gateway.start_worker()

    def tenant(label: str, rate_limit: int = 0) -> Tenant:
        record = create_tenant_record(gateway.url, f"soak-{label}", rate_limit)
        return Tenant(label, str(record["id"]), str(record["api_key"]), rate_limited=rate_limit > 0)

    rpm = limited_rpm_for(rate, limited_share)
    return Stack(children, gateway, upstreams.pids()[0], [tenant(f"t{i + 1}") for i in range(NORMAL_TENANTS)],
                 tenant("cache"), tenant("limited", rpm), rpm)


def cleanup(keep: bool) -> None:
    if not keep:
        drop_database(DATABASE)
        flush_redis(REDIS_URL)


@dataclass
class RssSampler:
    """VmRSS of every named process every `interval_s`, plus the summed RSS of the soak database's Postgres
    backends and the key count of the soak's Redis db (both reported, not judged)."""

    processes: dict[str, int]
    interval_s: float = 10.0
    started: float = field(default_factory=time.monotonic)
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    redis_keys: list[tuple[float, int]] = field(default_factory=list)

    async def sample(self, client: aioredis.Redis | None = None) -> None:
        at = time.monotonic() - self.started
        for name, pid in self.processes.items():
            kib = proc_status_kb(pid, "VmRSS")
            if kib is not None:
                self.samples.setdefault(name, []).append((at, kib / 1024))
        backends = [kib for pid in postgres_backends(DATABASE) if (kib := proc_status_kb(pid, "VmRSS")) is not None]
        if backends:
            self.samples.setdefault("postgres-backends", []).append((at, sum(backends) / 1024))
        if client is not None:
            self.redis_keys.append((at, int(await client.dbsize())))

    async def run(self, stop: asyncio.Event) -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            while not stop.is_set():
                await self.sample(client)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            await self.sample(client)
        finally:
            await client.aclose()


async def drain_usage(timeout_s: float = 60.0) -> dict[str, Any]:
    """Wait until the usage stream is empty and the usage table's row count has held still for 2 s."""
    client = aioredis.Redis.from_url(REDIS_URL)
    conn = await asyncpg.connect(PG_DSN)
    started = time.monotonic()
    last, steady_since = -1, time.monotonic()
    try:
        while True:
            pending = int(await client.xlen(USAGE_STREAM))
            count = int(await conn.fetchval("SELECT count(*) FROM usage_record"))
            if count != last or pending:
                last, steady_since = count, time.monotonic()
            elif time.monotonic() - steady_since >= 2.0:
                break
            if time.monotonic() - started > timeout_s:
                break
            await asyncio.sleep(0.5)
        dead = int(await client.xlen(USAGE_DEAD_STREAM))
    finally:
        await conn.close()
        await client.aclose()
    return {"drained": pending == 0, "wait_s": round(time.monotonic() - started, 1), "pending": pending,
            "dead_letters": dead, "rows": last}


async def usage_rows() -> list[UsageRow]:
    conn = await asyncpg.connect(PG_DSN)
    try:
        records = await conn.fetch("SELECT request_id, tenant_id, cache_hit, status FROM usage_record")
    finally:
        await conn.close()
    return [UsageRow(r["request_id"], r["tenant_id"], bool(r["cache_hit"]), r["status"]) for r in records]
