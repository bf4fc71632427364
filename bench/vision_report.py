"""The report of `bench.vision`: the markdown table and text written into docs/PERFORMANCE.md's generated
block, from the results `bench.vision.measure` collects."""

from pathlib import Path
from typing import Any

from bench.gateway_stats import ratio

IMAGE_BYTES = 5_000_000
KINDS = ("text", "image")
ROUNDS = 2
BEGIN = "<!-- bench.vision: generated section, rewritten by `python -m bench.vision` -->"
END = "<!-- bench.vision: end of generated section -->"
HEADING = "## Vision payloads (issue 13)"


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def table(cells: dict[str, Any]) -> list[str]:
    head = ["cell (client -> target / mode / conc.)", "kind", "n", "err", "p50 / p95 ms", "API CPU ms/req",
            "worker CPU ms/req", "upstream CPU ms/req", "Redis CPU ms/req", "peak RSS API / worker MiB",
            "image / text: p50, API CPU, worker CPU"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, cell in cells.items():
        text = cell["text"]
        for kind in KINDS:
            row, cpu = cell[kind], cell[kind]["cpu_ms_per_request"]
            ratios = "" if kind == "text" else ", ".join(
                _x(ratio(a, b)) for a, b in ((row["p50_ms"], text["p50_ms"]),
                                                   (cpu.get("api"), text["cpu_ms_per_request"].get("api")),
                                                   (cpu.get("worker"), text["cpu_ms_per_request"].get("worker"))))
            lines.append("| " + " | ".join([
                label if kind == "text" else "", kind, str(row["n"]), str(row["errors"]),
                f"{_f(row['p50_ms'])} / {_f(row['p95_ms'])}", _f(cpu.get("api")), _f(cpu.get("worker")),
                _f(cpu.get("upstream")), _f(cpu.get("redis"), 2),
                f"{_f(row['peak_rss_mib']['api'], 0)} / {_f(row['peak_rss_mib']['worker'], 0)}", ratios]) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    m, hwm = results["machine"], results["vmhwm_mib"]
    lines = [f"Command: `{results['command']}` ({results['elapsed_s'] / 60:.1f} min).",
             f"Machine: {m['nproc']} cores ({m['cpu_model']}), noisy: other helpers' work may have shared the CPU "
             f"(load average {' '.join(m['loadavg_start'])} at the start, {' '.join(m['loadavg_end'])} at the end). "
             f"Python {m['python']}, Redis {m['redis_version']}, PostgreSQL {m['postgres_version']}; "
             f"commit {m['git_commit']}, {m['date']}.",
             f"Image: {IMAGE_BYTES:,} random bytes behind a PNG header, base64 in the body "
             f"({results['body_bytes']['openai/image']:,} bytes of JSON). Fake upstream: 16 tokens, no latency. "
             f"Each cell: text and image batches alternating, {ROUNDS} rounds; `Cache-Control: no-cache, no-store` "
             "so every request goes through the queue. Every answer was checked: "
             f"`Received image/png {IMAGE_BYTES} bytes` for the image, nothing received for the text.",
             f"Peak RSS over the process's life (VmHWM), API / worker: {_f(hwm['text_only']['api'], 0)} / "
             f"{_f(hwm['text_only']['worker'], 0)} MiB after text-only warm-up, {_f(hwm['end']['api'], 0)} / "
             f"{_f(hwm['end']['worker'], 0)} MiB at the end.", "", *table(results["cells"])]
    if micro_ms := results.get("micro_ms"):
        lines += ["", "In-process timings of one 5 MB image body (best of 5): "
                  + ", ".join(f"{k} {v:.1f} ms" for k, v in micro_ms.items()) + "."]
    for name, prof in (results.get("profile") or {}).items():
        lines += ["", f"py-spy, {name} (OpenAI -> openai, plain, c1, 30 image requests, {prof['busy_samples']} busy "
                  "samples), leaf frame < its callers, share of busy samples:", "",
                  *(f"- {v}% `{k}`" for k, v in list(prof["self_pct"].items())[:7])]
    return "\n".join(lines) + "\n"


def write_docs(path: Path, generated: str) -> None:
    """Replace the generated block of the section (adding the section at the end when missing)."""
    block = f"{BEGIN}\n\n{generated}\n{END}"
    text = path.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    path.write_text(text)
