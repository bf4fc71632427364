"""TYPING GATE (issue 13 item 7): `mypy --strict` over api/, worker/, shared/ and cli/ finds nothing.

The settings are pyproject.toml's [tool.mypy] (strict, the four packages, the pydantic plugin); running `mypy`
with no arguments from the repository root checks exactly what this test checks. The stubs of the dependencies
that ship none (types-PyYAML, asyncpg-stubs) are in the test extra. A `# type: ignore` needs its error code
and a reason; a stale one is an error (`warn_unused_ignores`, part of strict)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "worker", "shared", "cli")


@pytest.mark.timeout(600)  # a first run without .mypy_cache takes about 20 s, more on a loaded machine
def test_mypy_strict_finds_no_errors() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--no-pretty", *PACKAGES],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        errors = [line for line in result.stdout.splitlines() if ": error: " in line]
        pytest.fail(f"mypy --strict: {len(errors)} errors (run `mypy` from the repository root)\n"
                    + "\n".join(errors or [result.stdout, result.stderr]), pytrace=False)
