"""The stack of the unit-cost benchmark and its readings at a window's edges.

The gateway runs as bench/gateway.py runs it (`start_gateway`: `llm-gateway serve` + one `llm-gateway worker`,
the fake provider, a throw-away PostgreSQL database, a tenant without limits), except that Redis is a private
`redis-server` (same binary, no persistence, like the shared one) on a port of its own: Redis's counters are
server-wide, and the shared server also carries other people's test runs, so counts read there would not be
exact. A reading holds, at one instant: CPU seconds per process group (/proc), Redis's INFO counters, the TCP
counters of every socket to Redis, rows and sizes per PostgreSQL table, and the WAL position."""

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import redis

from bench.gateway_proc import Child, Children, cpu_delta, pid_group_cpu, process_tree
from bench.gateway_stack import REPO, Gateway, Upstreams, free_port, start_gateway
from bench.unit_costs_probe import (
    RedisInfo,
    RedisReading,
    SocketCounters,
    client_sockets,
    pg_delta,
    pg_tables,
    redis_delta,
    stats_caught_up,
    tcp_delta,
    wal_lsn,
)

DATABASE = "llm_gateway_bench_units"
USAGE_TABLE = "usage_record"
ROWS_TIMEOUT_S = 30.0
STATS_TIMEOUT_S = 15.0


def start_redis(children: Children) -> tuple[int, Child]:
    """A private redis-server on a free port, without persistence (as the shared one runs)."""
    port = free_port()
    child = children.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", str(children.log_dir)], dict(os.environ))
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis(port=port).ping()
            return port, child
        except redis.ConnectionError:
            if time.monotonic() > deadline or not child.alive():
                raise RuntimeError(f"redis-server did not start:\n{child.log_tail()}") from None
            time.sleep(0.1)


@dataclass
class Stack:
    gateway: Gateway
    upstreams: Upstreams
    redis_port: int
    redis_child: Child
    info: RedisInfo
    pg: asyncpg.Connection
    harness_backend: int
    usage_expected: int = 0

    @property
    def groups(self) -> dict[str, list[int]]:
        return {"api": process_tree(self.gateway.api.pid), "worker": [w.pid for w in self.gateway.workers],
                "redis": [self.redis_child.pid], "upstream": self.upstreams.pids()}


def launch(children: Children, upstreams: Upstreams, work_dir: Path, models: dict[str, str]) -> tuple[Gateway, int,
                                                                                                        Child]:
    port, child = start_redis(children)
    gateway = start_gateway(children, upstreams, work_dir, redis_url=f"redis://127.0.0.1:{port}/0",
                            database=DATABASE, models=models, extra_env={"PYTHONPATH": str(REPO)})
    return gateway, port, child


async def connect(gateway: Gateway, upstreams: Upstreams, port: int, child: Child) -> Stack:
    pg = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{DATABASE}")
    backend = int(await pg.fetchval("SELECT pg_backend_pid()"))
    return Stack(gateway, upstreams, port, child, RedisInfo("127.0.0.1", port), pg, backend)


@dataclass
class Reading:
    at: float
    cpu: dict[str, dict[int, float]]
    redis: RedisReading
    sockets: dict[str, SocketCounters]
    tables: dict[str, dict[str, int]]
    wal: int


def cpu_now(stack: Stack) -> dict[str, dict[int, float]]:
    cpu = pid_group_cpu(stack.groups, DATABASE)
    cpu["postgres"].pop(stack.harness_backend, None)  # the harness's own queries
    return cpu


async def reading(stack: Stack) -> Reading:
    """CPU first and last-but-one: the PostgreSQL and ss readings after it cost the harness, not the stack."""
    at, cpu = time.perf_counter(), cpu_now(stack)
    info = stack.info.read()
    sockets = client_sockets(stack.redis_port)
    return Reading(at, cpu, info, sockets, await pg_tables(stack.pg), await wal_lsn(stack.pg))


async def usage_rows(stack: Stack) -> int:
    return int(await stack.pg.fetchval(f"SELECT count(*) FROM {USAGE_TABLE}"))


async def wait_usage(stack: Stack, expected: int) -> float:
    """Wait until `expected` usage rows are stored (the usage writer has flushed); seconds waited."""
    started = time.perf_counter()
    while (rows := await usage_rows(stack)) < expected:
        if time.perf_counter() - started > ROWS_TIMEOUT_S:
            raise RuntimeError(f"usage rows: {rows} after {ROWS_TIMEOUT_S:.0f}s, expected {expected}")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def wait_stats(stack: Stack) -> tuple[dict[str, dict[str, int]], bool]:
    """Wait until pg_stat_user_tables has seen every stored row (backends publish their counts when idle, up
    to 10 s late); the tables then, and whether it caught up before STATS_TIMEOUT_S."""
    deadline = time.perf_counter() + STATS_TIMEOUT_S
    while True:
        tables = await pg_tables(stack.pg)
        if stats_caught_up(tables) or time.perf_counter() > deadline:
            return tables, stats_caught_up(tables)
        await asyncio.sleep(0.25)


def window(stack: Stack, before: Reading, after: Reading, requests: int,
           stats: tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]] | None = None) -> dict[str, Any]:
    """Everything between two readings, as totals and per request. `stats`: the caught-up statistics at the
    window's two edges, for n_tup_ins/n_tup_upd (the row counts and sizes come from the readings)."""
    cpu = {name: cpu_delta(before.cpu.get(name, {}), pids) for name, pids in after.cpu.items()}
    r = redis_delta(before.redis, after.redis)
    tcp = tcp_delta(before.sockets, after.sockets, stack.groups)
    tables = pg_delta(before.tables, after.tables)
    if stats is not None:
        published = pg_delta(*stats)
        for name, change in tables.items():
            change["n_tup_ins"] = published.get(name, {}).get("n_tup_ins", 0)
            change["n_tup_upd"] = published.get(name, {}).get("n_tup_upd", 0)
    n = max(requests, 1)
    return {
        "requests": requests, "window_s": after.at - before.at,
        "cpu_s": cpu, "cpu_ms_per_request": {name: 1000 * s / n for name, s in cpu.items()},
        "gateway_cpu_ms_per_request": 1000 * sum(cpu.get(g, 0.0) for g in ("api", "worker", "redis", "postgres")) / n,
        "redis": r, "redis_commands_per_request": r["stats"]["total_commands_processed"] / n,
        "redis_calls_per_request": {name: calls / n for name, calls in sorted(r["calls"].items(),
                                                                              key=lambda kv: -kv[1])},
        "redis_usec_per_request": {name: usec / n for name, usec in r["usec"].items()},
        "redis_bytes_in_per_request": r["stats"]["total_net_input_bytes"] / n,
        "redis_bytes_out_per_request": r["stats"]["total_net_output_bytes"] / n,
        "redis_socket_reads_per_request": r["stats"]["total_reads_processed"] / n,
        "redis_memory_delta_bytes_per_request": r["stats"]["used_memory"] / n,
        "redis_keys_delta_per_request": r["keys"] / n,
        "tcp": tcp, "round_trips_per_request": {g: row["round_trips"] / n for g, row in tcp.items()},
        "pg_tables": tables,
        "pg_rows_per_request": {name: t["rows"] / n for name, t in tables.items() if t["rows"]},
        "pg_bytes_per_request": {name: t["size_bytes"] / n for name, t in tables.items()},
        "wal_bytes_per_request": (after.wal - before.wal) / n,
    }
