# One image for every role of the gateway:
#   docker run IMAGE                        -> llm-gateway serve --host 0.0.0.0 --port 8000 (the API)
#   docker run IMAGE worker                 -> an arq job worker (metrics on :9100)
#   docker run IMAGE migrate                -> apply the Alembic migrations once, then exit
# Distributed mode needs REDIS_URL and DATABASE_URL=postgresql+asyncpg://...; see docker-compose.yml and k8s/.
#
# Builds with BuildKit and with the classic builder (Compose v1's `build`), offline from any registry but the
# base image's and PyPI: no `# syntax=` frontend image, no `COPY --chmod`, no `RUN --mount`.
# Behind a TLS-intercepting proxy, pass its CA so pip can reach PyPI (only the builder stage sees it):
#   docker build --build-arg EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)" -t llm-gateway:local .
ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: the locked dependencies as wheels, then the gateway, into a venv without pip ----------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# /opt/build-tools holds pip and setuptools for the build; /opt/venv, the gateway's venv, never gets them.
RUN python -m venv /opt/build-tools \
    && python -m venv --without-pip /opt/venv
ENV PATH=/opt/build-tools/bin:$PATH

# Dependencies first: this layer is rebuilt only when pyproject.toml or the lock changes. Every version comes
# from constraints.txt, the set the tests passed with. (Empty package folders let the project resolve; the
# placeholder wheel it yields is thrown away.)
ARG EXTRA_CA_CERTS=""
COPY pyproject.toml README.md constraints.txt ./
RUN set -eu; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        { cat /etc/ssl/certs/ca-certificates.crt; printf '%s\n' "$EXTRA_CA_CERTS"; } > /tmp/ca-bundle.pem; \
        export PIP_CERT=/tmp/ca-bundle.pem; \
    fi; \
    pip install -c constraints.txt pip setuptools; \
    mkdir -p api worker shared cli; \
    pip wheel -c constraints.txt --no-build-isolation --wheel-dir /wheels .; \
    rm -rf /wheels/llm_gateway-*.whl build llm_gateway.egg-info /tmp/ca-bundle.pem

# Then the gateway itself, built and installed with no index at all: the step cannot reach the network.
COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY cli ./cli
RUN pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels/gateway . \
    && pip --python /opt/venv/bin/python install --no-index --find-links /wheels /wheels/gateway/llm_gateway-*.whl \
    && /opt/venv/bin/python -m compileall -q /opt/venv \
    && /opt/venv/bin/llm-gateway --help > /dev/null

# Wheels ship their extension modules with symbols (uvloop's alone is 13.6 MB, 1.6 MB stripped): strip them,
# then prove the stripped modules still load. binutils stays in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/* \
    && find /opt/venv -name '*.so*' -type f -exec strip --strip-unneeded {} + \
    && /opt/venv/bin/python -c "import uvloop, asyncpg, pydantic_core, httptools, yaml, lupa, sqlalchemy.engine" \
    && /opt/venv/bin/llm-gateway --help > /dev/null

# ---- runtime: the slim Python image plus the venv, as an unprivileged user ----------------------------
FROM ${PYTHON_IMAGE} AS runtime
# Labels are inherited: say what this image is, and that it is not a stand-in even when its base is one
# (scripts/standin-images.sh labels its images io.llm-gateway.standin=true).
LABEL org.opencontainers.image.title="llm-gateway" \
      org.opencontainers.image.description="Multi-tenant gateway for OpenAI and Anthropic: API, worker and migrations" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.llm-gateway.standin="false"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin gateway \
    && install -d -o 10001 -g 10001 /app
COPY --from=builder /opt/venv /opt/venv
# Both scripts are mode 0755 in git; COPY keeps the mode (`--chmod` would need BuildKit).
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY docker/healthcheck.py /usr/local/bin/docker-healthcheck
# The working directory is writable by the gateway user only for the embedded mode's SQLite file; the
# distributed mode writes nothing but /tmp (Kubernetes runs it with a read-only root filesystem).
WORKDIR /app
USER 10001:10001
# 8000: the API; 9101: the API's Prometheus metrics (API_METRICS_PORT; never publish it: it lists every
# tenant); 9100: a worker's Prometheus metrics (WORKER_METRICS_PORT).
EXPOSE 8000 9101 9100
# One check for every role, on the port the container was really started with: the API's /health (200 only
# when Redis, the database and a worker are up), a worker's metrics port; see docker/healthcheck.py.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["docker-healthcheck"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
