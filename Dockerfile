# syntax=docker/dockerfile:1
# One image for every role of the gateway:
#   docker run IMAGE                        -> llm-gateway serve --host 0.0.0.0 --port 8000 (the API)
#   docker run IMAGE worker                 -> an arq job worker (metrics on :9100)
#   docker run IMAGE migrate                -> apply the Alembic migrations once, then exit
# Distributed mode needs REDIS_URL and DATABASE_URL=postgresql+asyncpg://...; see docker-compose.yml and k8s/.
ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: wheels for the dependencies (cached while pyproject.toml is unchanged), then the gateway ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
# (Empty package folders let the project resolve; the placeholder wheel it yields is thrown away.)
RUN mkdir -p api worker shared cli \
    && pip wheel --wheel-dir /wheels . \
    && rm -r /wheels/llm_gateway-*.whl build llm_gateway.egg-info

# Then the gateway itself, installed from wheels only (no network, no build tools in the final image).
COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY cli ./cli
RUN pip wheel --no-deps --wheel-dir /wheels/gateway . \
    && pip install --no-index --find-links /wheels /wheels/gateway/llm_gateway-*.whl \
    && python -m compileall -q /opt/venv \
    && llm-gateway --help > /dev/null

# ---- runtime: the slim Python image plus the venv, as an unprivileged user ----------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin gateway \
    && install -d -o 10001 -g 10001 /app
COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# The working directory is writable by the gateway user only for the embedded mode's SQLite file; the
# distributed mode writes nothing but /tmp (Kubernetes runs it with a read-only root filesystem).
WORKDIR /app
USER 10001:10001
# 8000: the API (and its /metrics); 9100: a worker's Prometheus metrics (WORKER_METRICS_PORT).
EXPOSE 8000 9100
# Readiness of the API: /health answers 200 only when Redis, the database and at least one worker are up
# (urllib raises on a 503, so the check fails). Worker and migrate containers override or disable it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
