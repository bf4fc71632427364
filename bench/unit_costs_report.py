"""The markdown report of the unit-cost benchmark (bench/unit_costs.py): per-cell unit costs, Redis commands
per request by name, held streams, what Redis keeps, and the grouped profiles."""

from typing import Any

from bench.profile_groups import markdown as profile_markdown

GATEWAY = ("api", "worker", "redis", "postgres")
TOP_COMMANDS = 25


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cells_table(cells: dict[str, Any]) -> str:
    lines = ["| cell | n (err) | p50 ms | CPU ms/req: API / worker / Redis / PG = gateway (upstream) | Redis cmds/req "
             "| round trips/req API / worker | Redis bytes in / out per req | socket reads/req | PG rows/req "
             "| PG bytes/req (tables) / WAL | load avg before / after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, c in cells.items():
        cpu = c["cpu_ms_per_request"]
        rt = c["round_trips_per_request"]
        rows = ", ".join(f"{name} {n:.2f}" for name, n in c["pg_rows_per_request"].items())
        lines.append(
            f"| {label} | {c['ok']} ({c['errors']}) | {_f(c['latency_p50_ms'])} | "
            + " / ".join(_f(cpu.get(g)) for g in GATEWAY) + f" = {_f(c['gateway_cpu_ms_per_request'])} "
            f"({_f(cpu.get('upstream'))}) | {_f(c['redis_commands_per_request'])} | {_f(rt.get('api'))} / "
            f"{_f(rt.get('worker'))} | {_f(c['redis_bytes_in_per_request'], 0)} / "
            f"{_f(c['redis_bytes_out_per_request'], 0)} | {_f(c['redis_socket_reads_per_request'])} | {rows} | "
            f"{_f(sum(c['pg_bytes_per_request'].values()), 0)} / {_f(c['wal_bytes_per_request'], 0)} | "
            f"{' '.join(c['loadavg']['before'])} / {' '.join(c['loadavg']['after'])} |")
    return "\n".join(lines)


def commands_table(cells: dict[str, Any]) -> str:
    """Calls per request by command name, with Redis's own time per request (us) for the command."""
    first = next(iter(cells.values()))
    names = list(first["redis_calls_per_request"])[:TOP_COMMANDS]
    for c in cells.values():
        names += [n for n in c["redis_calls_per_request"] if n not in names]
    labels = list(cells)
    lines = ["| command | " + " | ".join(f"{label} calls (Redis us)" for label in labels) + " |",
             "|---|" + "---|" * len(labels)]
    for name in names:
        row = [f"{_f(c['redis_calls_per_request'].get(name), 3)} ({_f(c['redis_usec_per_request'].get(name), 1)})"
               for c in cells.values()]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    totals = [_f(c["redis_commands_per_request"], 2) for c in cells.values()]
    lines.append("| **total** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def hold_section(hold: dict[str, Any]) -> str:
    per = hold["per_chunk"]
    cpu = per["cpu_ms_per_request"]
    mem = hold["kib_per_open_stream"]
    return (f"{hold['streams']} streams open at once ({hold['ok']} ok, {hold['errors']} errors), "
            f"{hold['chunks_in_window']} chunks in a {per['window_s']:.1f} s window.\n\n"
            f"- Memory per open stream: API {mem['api']:.1f} KiB, worker {mem['worker']:.1f} KiB, Redis "
            f"used_memory {mem['redis_used_memory']:.1f} KiB.\n"
            f"- Per chunk: CPU us API {1000 * cpu.get('api', 0):.0f}, worker {1000 * cpu.get('worker', 0):.0f}, "
            f"Redis {1000 * cpu.get('redis', 0):.0f}; Redis commands {per['redis_commands_per_request']:.2f}, bytes "
            f"in/out {per['redis_bytes_in_per_request']:.0f} / {per['redis_bytes_out_per_request']:.0f}; round trips "
            f"API {per['round_trips_per_request'].get('api', 0):.2f}, worker "
            f"{per['round_trips_per_request'].get('worker', 0):.2f}.\n"
            "- Commands per chunk: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                 list(per["redis_calls_per_request"].items())[:8]))


def monitor_table(monitor: dict[str, Any]) -> str:
    """Commands per request by origin (sent by the API, sent by the worker, run inside scripts)."""
    lines = ["| mode | origin | commands per request | by name |", "|---|---|---|---|"]
    for mode, m in monitor.items():
        for origin, total in sorted(m["totals_per_request"].items(), key=lambda kv: -kv[1]):
            names = ", ".join(f"{k} {v:.2f}" for k, v in m["per_request"][origin].items())
            lines.append(f"| {mode} | {origin} | {total:.2f} | {names} |")
    return "\n".join(lines)


def census_table(census: dict[str, Any]) -> str:
    lines = [f"{census['keys']} keys, used_memory {census['used_memory'] / 2**20:.1f} MiB.", "",
             "| key pattern | type | keys | bytes (avg) | median TTL s |", "|---|---|---|---|---|"]
    for pattern, row in list(census["patterns"].items())[:15]:
        average = row["bytes"] / row["keys"]
        lines.append(f"| `{pattern}` | {row['type']} | {row['keys']} | {row['bytes']:,} ({average:.0f}) | "
                     f"{row['median_ttl_s']} |")
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    parts = [f"Commit {machine.get('git_commit')}, {machine.get('date')}, {machine.get('nproc')} cores "
             f"({machine.get('cpu_model')}); load average {' '.join(machine.get('loadavg_start', []))} at the start, "
             f"{' '.join(machine.get('loadavg_end', []))} at the end.", "", "### Unit costs per request", "",
             cells_table(results["cells"]), "", "### Redis commands per request, by name", "",
             commands_table(results["cells"]), "",
             "Idle stack, Redis calls per second: " + ", ".join(
                 f"{k} {v:.2f}" for k, v in results["idle"]["redis_calls_per_s"].items()), "",
             "### Who sends them (MONITOR, sequential calibration batch)", "", monitor_table(results["monitor"]), "",
             "### Streams held open", "", hold_section(results["hold_streams"]), "",
             "### What Redis keeps", "", census_table(results["redis_census"])]
    for label, prof in results.get("profile", {}).items():
        for name in ("api", "worker"):
            if "areas" in prof.get(name, {}):
                parts += ["", f"### Profile, {name}, {label} ({prof[name]['busy_samples']} busy samples, "
                          f"{prof['cpu_ms_per_request'][name]:.2f} ms CPU per request)", "",
                          profile_markdown(prof[name]["areas"], name)]
    return "\n".join(parts)
