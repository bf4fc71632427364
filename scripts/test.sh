#!/usr/bin/env bash
# README's test command, and CI's (.ci/run only calls this): everything a fresh Debian (bookworm) machine needs
# to pass the tests, then the linter and the whole suite (arguments go to pytest). Each step is skipped when
# it is already done, so a second run goes straight to the tests:
#   1. Debian packages the tests use, when their commands are missing: prometheus (promtool and prometheus
#      check the Prometheus config, alert rules and dashboard queries); docker.io, docker-compose and
#      debootstrap (the live container tests of tests/deploy); chromium (the console's browser tests, which
#      Playwright drives by path: tests/e2e/test_console.py). `apt-get update` runs only when something must
#      be installed; without root nothing is installed, and the tests that need them say so.
#   2. Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, user postgres without a password, database
#      `test`) are started when down; the script stops with the reason when either cannot be reached.
#   3. .venv with the gateway and its test dependencies at the versions of constraints.txt (scripts/lock.sh).
#   4. Claude Code (npm @anthropic-ai/claude-code, pinned below) in .cache/clients for the real-client
#      end-to-end tests, when npm exists (Debian: nodejs and npm, installed in step 1 as root). 2.1.197 needs
#      Node >= 18 (bookworm has 18.20) and ships a native binary; later releases ask for Node >= 22.
#   5. ruff, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "scripts/test.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# command -> the Debian package that provides it (dockerd, not docker: a machine may have a client alone)
declare -A PACKAGE_OF=(
  [promtool]=prometheus [prometheus]=prometheus
  [dockerd]=docker.io [docker-compose]=docker-compose [debootstrap]=debootstrap
  [node]=nodejs [npm]=npm [chromium]=chromium
)
CLAUDE_CODE_VERSION=2.1.197

install_debian_packages() {
  local missing=() command
  for command in "${!PACKAGE_OF[@]}"; do
    command -v "$command" >/dev/null || missing+=("${PACKAGE_OF[$command]}")
  done
  # Debian's python3 creates venvs only with python3-venv (ensurepip).
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if ! command -v apt-get >/dev/null; then
    say "no apt-get, so not installing the Debian packages ${missing[*]}; the tests that need them fail or skip"
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    say "not root, so not installing ${missing[*]} (as root: apt-get install ${missing[*]}); the tests that need them fail or skip"
    return
  fi
  say "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }

start_services() {
  if ! redis_up && command -v redis-server >/dev/null; then
    say "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/test.log || true
  fi
  if ! postgres_up && command -v pg_ctlcluster >/dev/null; then
    say "starting PostgreSQL"
    local version
    for version in /etc/postgresql/*/main; do
      version=${version#/etc/postgresql/}
      pg_ctlcluster --skip-systemctl-redirect "${version%/main}" main start || true
    done
  fi
  for _ in $(seq 1 60); do
    if redis_up && postgres_up; then break; fi
    sleep 0.5
  done
  redis_up || die "Redis at 127.0.0.1:6379 is unreachable (Debian: apt-get install redis-server)"
  postgres_up || die "PostgreSQL at 127.0.0.1:5432 is unreachable (Debian: apt-get install postgresql)"
}

# The tests connect as postgres without a password and create their databases from `test`.
ensure_test_database() {
  local psql=(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -w -qAt)
  "${psql[@]}" -c 'SELECT 1' >/dev/null \
    || die "PostgreSQL refuses user postgres without a password from 127.0.0.1 (pg_hba.conf: host all all 127.0.0.1/32 trust)"
  if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'test'")" ]; then
    say "creating the PostgreSQL database test"
    "${psql[@]}" -c 'CREATE DATABASE test'
  fi
}

# tests/e2e/test_real_clients_claude_code.py runs .cache/clients/node_modules/.bin/claude.
install_claude_code() {
  local prefix=.cache/clients
  if [ -x "$prefix/node_modules/.bin/claude" ] \
    && "$prefix/node_modules/.bin/claude" --version 2>/dev/null | grep -q "^$CLAUDE_CODE_VERSION "; then
    return
  fi
  if ! command -v npm >/dev/null; then
    say "no npm, so not installing Claude Code; its end-to-end test skips (fails under CI=true)"
    return
  fi
  say "installing Claude Code $CLAUDE_CODE_VERSION into $prefix"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" \
    || say "npm install of Claude Code failed; its end-to-end test skips (fails under CI=true)"
}

install_debian_packages
install_claude_code
start_services
ensure_test_database
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
.venv/bin/ruff check .
# -rs: a skipped test says why (the live container tests skip, with the reason, where Docker cannot be had).
.venv/bin/pytest -q -rs "$@"
