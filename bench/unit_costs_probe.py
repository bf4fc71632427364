"""Readings of the unit-cost benchmark (`bench/unit_costs.py`), each exact for what it counts.

- Redis: its own counters (`INFO all`: commands per name with their server time, network bytes, socket reads
  and writes, memory), read over a raw socket so the harness knows to the byte what its own INFO calls add
  to a window, and takes exactly that off (`redis_delta`).
- Round trips per process: the kernel's TCP counters of every client socket to Redis (`ss -ti`: segments
  that carried data, bytes), grouped by the process that owns the socket. redis-py and asyncio set
  TCP_NODELAY, and on loopback a segment holds up to 64 KiB, so one segment sent is one write: a command or
  a whole pipeline, i.e. one round trip (a pub/sub message is a segment received without one sent).
  MONITOR would see every command but costs Redis more than the traffic it watches; patching the client in
  the measured processes would change what is measured.
- PostgreSQL: rows per table (`count(*)`, exact at once) beside `pg_stat_user_tables` (which backends
  publish up to 10 s late), relation sizes, and the server's WAL position.
"""

import re
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any

import asyncpg

INFO_COMMAND = b"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n"
STAT_KEYS = ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes",
             "total_reads_processed", "total_writes_processed", "used_memory", "total_connections_received")
_USERS = re.compile(r'users:\(\("[^"]*",pid=(\d+)')
_COUNTER = re.compile(r"\b(bytes_sent|bytes_acked|bytes_received|data_segs_out|data_segs_in):(\d+)")


@dataclass
class RedisReading:
    """One `INFO all` snapshot: calls and server microseconds per command name, the STAT_KEYS counters, keys
    per db, and the length of the raw reply (what the harness's own call adds to the next window)."""

    commands: dict[str, tuple[int, int]]
    stats: dict[str, int]
    keys: int
    reply_bytes: int


class RedisInfo:
    """A raw RESP connection that only sends `INFO all`, so its byte counts are known exactly."""

    def __init__(self, host: str, port: int) -> None:
        self._sock = socket.create_connection((host, port), timeout=10)
        self._file = self._sock.makefile("rb")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def read(self) -> RedisReading:
        self._sock.sendall(INFO_COMMAND)
        header = self._file.readline()
        if not header.startswith(b"$"):
            raise RuntimeError(f"unexpected INFO reply: {header[:80]!r}")
        body = self._file.read(int(header[1:]) + 2)
        return parse_info(body.decode(), len(header) + len(body))


def parse_info(text: str, reply_bytes: int) -> RedisReading:
    commands: dict[str, tuple[int, int]] = {}
    stats: dict[str, int] = {}
    keys = 0
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.startswith("cmdstat_"):
            fields = dict(part.split("=", 1) for part in value.split(","))
            commands[name.removeprefix("cmdstat_")] = (int(fields["calls"]), int(fields["usec"]))
        elif name in STAT_KEYS:
            stats[name] = int(value)
        elif re.fullmatch(r"db\d+", name):
            keys += int(value.split(",")[0].removeprefix("keys="))
    return RedisReading(commands, stats, keys, reply_bytes)


def redis_delta(before: RedisReading, after: RedisReading) -> dict[str, Any]:
    """What happened in Redis between two readings, with the harness's own INFO call taken off exactly: the
    first reading's reply (written after its snapshot) and the second one's request (read before its
    snapshot), one call, one socket read and one write."""
    calls: dict[str, int] = {}
    usec: dict[str, int] = {}
    for name, (count, micros) in after.commands.items():
        was_count, was_micros = before.commands.get(name, (0, 0))
        count_delta = count - was_count - (1 if name == "info" else 0)
        if count_delta:
            calls[name], usec[name] = count_delta, micros - was_micros
    stats = {key: after.stats.get(key, 0) - before.stats.get(key, 0) for key in STAT_KEYS}
    stats["total_commands_processed"] -= 1
    stats["total_net_input_bytes"] -= len(INFO_COMMAND)
    stats["total_net_output_bytes"] -= before.reply_bytes
    stats["total_reads_processed"] -= 1
    stats["total_writes_processed"] -= 1
    return {"calls": calls, "usec": usec, "stats": stats, "keys": after.keys - before.keys}


@dataclass
class SocketCounters:
    pid: int
    counters: dict[str, int] = field(default_factory=dict)


def client_sockets(port: int) -> dict[str, SocketCounters]:
    """Every established TCP socket to 127.0.0.1:`port`, by its local address, with its owner and counters."""
    out = subprocess.run(["ss", "-tinpH", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    return parse_ss(out, port)


def parse_ss(text: str, port: int) -> dict[str, SocketCounters]:
    """`ss -tinpH` output: a line per socket (addresses and owner) followed by an indented line of counters."""
    sockets: dict[str, SocketCounters] = {}
    current: SocketCounters | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            tokens = line.split()
            peer_at = next((i for i, t in enumerate(tokens) if t.endswith(f":{port}") and i > 0), None)
            owner = _USERS.search(line)
            current = None
            if peer_at is not None and owner is not None:
                current = sockets.setdefault(tokens[peer_at - 1], SocketCounters(int(owner[1])))
        elif current is not None:
            current.counters.update({name: int(value) for name, value in _COUNTER.findall(line)})
    return sockets


def tcp_delta(before: dict[str, SocketCounters], after: dict[str, SocketCounters],
              groups: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    """Per process group: segments sent with data (round trips), received with data, bytes each way, and the
    sockets opened and closed in between (a closed socket's last counters are lost, so that count says how
    exact the rest is)."""
    group_of = {pid: name for name, pids in groups.items() for pid in pids}
    totals: dict[str, dict[str, int]] = {}
    for address in before.keys() | after.keys():
        now, was = after.get(address), before.get(address)
        owner = (now or was)
        name = group_of.get(owner.pid) if owner else None
        if name is None:
            continue
        row = totals.setdefault(name, {"round_trips": 0, "segments_in": 0, "bytes_out": 0, "bytes_in": 0,
                                       "sockets_opened": 0, "sockets_closed": 0})
        if now is None:
            row["sockets_closed"] += 1
            continue
        if was is None:
            row["sockets_opened"] += 1
        old = was.counters if was else {}
        sent_key = "bytes_sent" if "bytes_sent" in now.counters else "bytes_acked"
        row["round_trips"] += now.counters.get("data_segs_out", 0) - old.get("data_segs_out", 0)
        row["segments_in"] += now.counters.get("data_segs_in", 0) - old.get("data_segs_in", 0)
        row["bytes_out"] += now.counters.get(sent_key, 0) - old.get(sent_key, 0)
        row["bytes_in"] += now.counters.get("bytes_received", 0) - old.get("bytes_received", 0)
    return totals


async def pg_tables(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """Per user table: live rows (`count(*)`), inserted and updated rows as the statistics see them, and the
    total size on disk (heap, indexes, TOAST)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = await conn.fetch("SELECT relname, n_tup_ins, n_tup_upd, pg_total_relation_size(relid) AS size "
                            "FROM pg_stat_user_tables ORDER BY relname")
    tables: dict[str, dict[str, int]] = {}
    for row in rows:
        name = str(row["relname"])
        count = await conn.fetchval(f'SELECT count(*) FROM "{name}"')
        tables[name] = {"rows": int(count), "n_tup_ins": int(row["n_tup_ins"]), "n_tup_upd": int(row["n_tup_upd"]),
                        "size_bytes": int(row["size"])}
    return tables


def pg_delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Tables that changed, with the change of each figure."""
    out = {}
    for name, now in after.items():
        was = before.get(name, dict.fromkeys(now, 0))
        change = {key: now[key] - was.get(key, 0) for key in now}
        if any(change.values()):
            out[name] = change
    return out


def stats_caught_up(tables: dict[str, dict[str, int]]) -> bool:
    """True once every table's statistics have seen all its rows (no table here ever deletes in a run)."""
    return all(t["n_tup_ins"] >= t["rows"] for t in tables.values())


async def wal_lsn(conn: asyncpg.Connection) -> int:
    """The server's WAL insert position in bytes (server-wide: other databases' writes count too)."""
    return int(await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')"))


class Monitor:
    """`MONITOR` on a raw connection, read in a thread: every command Redis runs, with its source (a client's
    address, or `lua` inside a script). Heavy for Redis, so only for a short calibration batch: it tells the
    commands a client sends (one per round trip or queued in a pipeline) from those scripts run."""

    def __init__(self, host: str, port: int) -> None:
        import threading

        self._sock = socket.create_connection((host, port), timeout=None)
        self._sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self._file = self._sock.makefile("rb")
        if self._file.readline().strip() != b"+OK":
            raise RuntimeError("MONITOR refused")
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._file:
                self.lines.append(line.decode(errors="replace"))
        except (OSError, ValueError):
            return

    def stop(self) -> list[str]:
        self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)
        return self.lines


_MONITOR_LINE = re.compile(r'^\+[\d.]+ \[\d+ (?P<source>[^\]]+)\] "(?P<command>[^"]+)"')


def monitor_counts(lines: list[str], sources: dict[str, str]) -> dict[str, dict[str, int]]:
    """Commands by origin and name: origin is the process group of the client's address (`sources`), `lua`
    for commands run inside a script, `other` for an address no group owns (the harness)."""
    counts: dict[str, dict[str, int]] = {}
    for line in lines:
        match = _MONITOR_LINE.match(line)
        if match is None:
            continue
        source = match["source"]
        origin = "lua" if source == "lua" else sources.get(source, "other")
        row = counts.setdefault(origin, {})
        command = match["command"].lower()
        row[command] = row.get(command, 0) + 1
    return counts
