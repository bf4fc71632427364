"""Process plumbing of the gateway benchmark: child processes that are always stopped (by their own process
group, also on Ctrl-C and errors), and readings from `/proc`: CPU seconds per process (utime + stime), peak
RSS (VmHWM), process trees, the Postgres backends of one database and the machine's busy CPU."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")
PidCpu = dict[int, float]


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of one process in seconds, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # fields after the command name, starting at `state`
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int | None:
    """A `kB` field of /proc/<pid>/status, such as VmHWM (peak RSS) or VmRSS."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    parents = {pid: _parent(pid) for pid in _all_pids()}
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree.extend(frontier)
    return tree


def postgres_backends(database: str) -> list[int]:
    """PIDs of the Postgres backends connected to `database` (their title reads `postgres: ... user db ...`)."""
    needle = f" {database} ".encode()
    pids = []
    for pid in _all_pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and needle in title:
            pids.append(pid)
    return pids


def pid_group_cpu(groups: Mapping[str, Sequence[int]], pg_database: str | None) -> dict[str, PidCpu]:
    """CPU seconds per process, by group; with `pg_database`, a `postgres` group of its current backends."""
    found = {name: list(pids) for name, pids in groups.items()}
    if pg_database:
        found["postgres"] = postgres_backends(pg_database)
    readings: dict[str, PidCpu] = {}
    for name, pids in found.items():
        readings[name] = {pid: cpu for pid in pids if (cpu := proc_cpu_s(pid)) is not None}
    return readings


def cpu_delta(before: PidCpu, after: PidCpu) -> float:
    """CPU used between two readings: a process that appeared in between counts whole, one that vanished
    is lost (only Postgres backends come and go)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine, all cores, since boot (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class Child:
    """A child process in its own session, its output kept in a log file; `stop` ends its whole group."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        # Children of the group (e.g. a server's workers) may outlive the leader for a moment.
        self._signal(signal.SIGKILL)
        self._log.close()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


class Children:
    """Every child the benchmark started, stopped together in reverse order of start."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.items: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> Child:
        child = Child(name, argv, env, self.log_dir, cwd)
        self.items.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self.items:
            self.items.remove(child)

    def stop_all(self) -> None:
        while self.items:
            self.items.pop().stop()


def wait_http(url: str, child: Child, timeout_s: float = 60.0, expect: int = 200) -> None:
    """Wait until `url` answers `expect`; raise with the child's log tail if it exits or never does."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == expect:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f}s ({last}):\n{child.log_tail()}")
