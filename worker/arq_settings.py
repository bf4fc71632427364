"""Entry point for arq's own CLI: `arq worker.arq_settings.WorkerSettings`. arq reads a class's attributes,
so this module builds them from the environment when imported; `llm-gateway worker` does not use it."""

from arq.connections import RedisSettings

from shared.config import get_settings
from worker.main import worker_options

_settings = get_settings()
_redis_url = _settings.resolved_redis_url
if _redis_url is None:
    raise RuntimeError("arq workers need REDIS_URL or REDIS_HOST; the embedded mode runs via `llm-gateway serve`")

WorkerSettings = type(
    "WorkerSettings", (), {**worker_options(_settings), "redis_settings": RedisSettings.from_dsn(_redis_url)}
)
