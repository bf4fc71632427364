#!/usr/bin/env bash
# Refreshes constraints.txt: every dependency of pyproject.toml (all extras) pinned to the versions the tests
# pass with. The README's commands, CI (.ci/run -> scripts/test.sh) and the Dockerfile all install with
# `-c constraints.txt`, so this file, not whatever PyPI offers on the day, decides what gets installed.
#
#   ./scripts/lock.sh                          after editing pyproject.toml's dependencies (keeps other pins)
#   ./scripts/lock.sh --upgrade                 move everything to the newest releases pyproject.toml allows
#   ./scripts/lock.sh --upgrade-package NAME    move one package (and what it needs)
#
# then ./scripts/test.sh, and commit constraints.txt with the change. Other options go to pip-compile.
# The output is a pip constraints file, so: no extras (--strip-extras; constraints cannot carry them), pip and
# setuptools pinned too (--allow-unsafe), no hashes (they would force hash-checking of the editable install),
# and nothing from this machine's pip configuration (find-links, index URLs: tests/test_lock.py checks).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/pip-compile ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  constraints=(); [ -f constraints.txt ] && constraints=(-c constraints.txt)
  .venv/bin/python -m pip install -q --disable-pip-version-check "${constraints[@]}" pip-tools
fi
CUSTOM_COMPILE_COMMAND=./scripts/lock.sh .venv/bin/pip-compile --quiet --all-extras --strip-extras \
  --allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --no-emit-options \
  --output-file constraints.txt "$@" pyproject.toml
