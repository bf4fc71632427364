"""A job as clients see it: the JSON that `GET /api/v1/jobs/{id}` answers and that a job's webhook delivers.
It lives in shared/ because both the API (reads) and the workers (webhook payloads) render it, and api/ and
worker/ never import each other."""

from shared.errors import error_from_dict
from shared.jobs import JobRecord
from shared.wire import openai as openai_wire

__all__ = ["render_job"]


def render_job(record: JobRecord) -> dict[str, object]:
    body: dict[str, object] = {
        "id": record.id, "object": "job", "status": record.status.value, "model": record.request.model,
        "created_at": record.created_at, "started_at": record.started_at, "finished_at": record.finished_at,
        "attempt": record.attempt, "worker": record.worker_id, "provider": record.provider,
        "served_model": record.model,
        "fallback_used": record.fallback_used, "cost_usd": record.cost_usd, "result": None, "error": None,
    }
    if record.result is not None:
        body["result"] = openai_wire.render_completion(record.result)
    if record.error is not None:
        error = error_from_dict(record.error)
        body["error"] = {"message": error.message, "type": error.type, "code": error.code}
    return body
