#!/bin/sh
# Container entrypoint for every role of the image (serve, worker, migrate, tenants, ...).
# Prometheus multiprocess mode keeps one file per process in PROMETHEUS_MULTIPROC_DIR; files left by an
# earlier run of this container would be summed into the new one's metrics, so the directory is emptied
# before the gateway starts. Then `exec` makes llm-gateway PID 1, so it receives SIGTERM itself
# (the API shuts down gracefully, a worker drains its jobs for up to WORKER_DRAIN_S seconds).
set -eu

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    case "$PROMETHEUS_MULTIPROC_DIR" in
        /) echo "entrypoint: refusing to empty PROMETHEUS_MULTIPROC_DIR=/" >&2; exit 64 ;;
    esac
    if mkdir -p "$PROMETHEUS_MULTIPROC_DIR" 2>/dev/null && [ -w "$PROMETHEUS_MULTIPROC_DIR" ]; then
        find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
    else
        # A read-only root filesystem without a tmpfs on /tmp (`docker run --read-only IMAGE ...`). One process
        # needs no shared metrics directory, so run without it; `serve --workers N` then refuses to start and
        # says what it needs.
        echo "entrypoint: $PROMETHEUS_MULTIPROC_DIR is not writable (read-only root filesystem? add" \
             "--tmpfs /tmp); running without PROMETHEUS_MULTIPROC_DIR: metrics are per process" >&2
        unset PROMETHEUS_MULTIPROC_DIR
    fi
fi

exec llm-gateway "$@"
