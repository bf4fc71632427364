"""A worker process loads only what a worker runs: not FastAPI, uvicorn, Alembic or SQLAlchemy (on
PostgreSQL the usage writer uses asyncpg directly), nor the SDK of a provider no route uses. Each is tens of
MiB of the worker's memory; issue 5 holds every process to a quarter of LiteLLM's."""

import subprocess
import sys

HEAVY = ("fastapi", "uvicorn", "alembic", "sqlalchemy", "sqlmodel", "anthropic")


def test_worker_command_imports_nothing_it_does_not_run() -> None:
    code = ("import sys; import cli.main, worker.main; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""
