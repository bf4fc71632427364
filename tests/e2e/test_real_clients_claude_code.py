"""Claude Code headless (`claude -p`, npm @anthropic-ai/claude-code, installed by scripts/test.sh into
.cache/clients) pointed at the gateway with ANTHROPIC_BASE_URL, completing a turn that uses a tool.

The fake provider answers Claude Code's first request (two dozen tools, adaptive thinking, a system message
after the user turn, cache_control everywhere) with a signed thinking block and a `Read` of a file in a
fresh directory (the prompt's `[tool:Read {...}]` directive picks the tool and its path); Claude Code reads
it and sends the `tool_result` back with the thinking block, whose signature the fake verifies; the answer
quotes the file, and Claude Code prints it. Only an Anthropic target: Claude Code's Anthropic-only fields
(`context_management`, ...) make an OpenAI target refuse it unless the route allows dropping them.
Skipped, with the reason, only where `claude` is not installed (no npm); under CI=true that fails."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.real_clients import ClientsGateway, clients_gateway, in_ci  # noqa: F401 (fixture)
from tests.support.processes import REPO

CLAUDE = REPO / ".cache" / "clients" / "node_modules" / ".bin" / "claude"
SECRET = "the secret word is avocado-4711"


def _claude_binary() -> str:
    found = str(CLAUDE) if CLAUDE.exists() else shutil.which("claude")
    if found is None:
        reason = f"Claude Code is not installed ({CLAUDE}; scripts/test.sh installs it with npm when npm exists)"
        if in_ci():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return found


def test_claude_code_headless_completes_a_turn_with_a_tool(
    clients_gateway: ClientsGateway, tenant_key: str, tmp_path: Path  # noqa: F811
) -> None:
    routed = "rc-anthropic"
    claude = _claude_binary()
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    notes = work / "notes.txt"
    notes.write_text(SECRET + "\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
        "ANTHROPIC_BASE_URL": clients_gateway.base_url,
        "ANTHROPIC_API_KEY": tenant_key, "ANTHROPIC_MODEL": routed, "ANTHROPIC_SMALL_FAST_MODEL": routed,
        "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
    }
    before = len(clients_gateway.upstream_requests(routed))
    prompt = f'[tool:Read {{"file_path": "{notes}"}}] What does notes.txt say?'
    done = subprocess.run([claude, "-p", prompt, "--model", routed], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"stdout: {done.stdout}\nstderr: {done.stderr}"
    assert done.stdout.startswith("Tool result:") and SECRET in done.stdout
    turns = [entry["body"] for entry in clients_gateway.upstream_requests(routed)[before:]]
    assert len(turns) >= 2 and len(turns[0]["tools"]) > 5 and turns[0]["thinking"]["type"] == "adaptive"
    last = turns[-1]["messages"]
    assistant = next(m for m in reversed(last) if m["role"] == "assistant")
    kinds = [block["type"] for block in assistant["content"]]
    assert kinds == ["thinking", "tool_use"]  # signed thinking sent back intact (the fake verifies it)
    assert last[-1]["content"][0]["type"] == "tool_result"
