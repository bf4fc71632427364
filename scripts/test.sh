#!/usr/bin/env bash
# Installs the gateway with its test dependencies into .venv, then runs the linter and the whole test suite
# against the real Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) of this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/pytest -q "$@"
