"""A job as clients see it: the JSON that `GET /api/v1/jobs/{id}` answers and that a job's webhook delivers.
It lives in shared/ because both the API (reads) and the workers (webhook payloads) render it, and api/ and
worker/ never import each other.

`result` is the answer as a `chat.completion` (tool calls as `tool_calls`, a refusal as the message's
`refusal`); the reasoning the model showed, which that shape has no place for, is `thinking` beside it: its
blocks in order, `{"text", "signature"}` or `{"redacted"}` (null when there is none)."""

from shared.errors import error_from_dict
from shared.jobs import JobRecord
from shared.models import Completion
from shared.wire import openai as openai_wire

__all__ = ["render_job"]


def render_job(record: JobRecord) -> dict[str, object]:
    body: dict[str, object] = {
        "id": record.id, "object": "job", "status": record.status.value, "model": record.request.model,
        "created_at": record.created_at, "started_at": record.started_at, "finished_at": record.finished_at,
        "attempt": record.attempt, "worker": record.worker_id, "provider": record.provider,
        "served_model": record.model,
        "fallback_used": record.fallback_used, "cost_usd": record.cost_usd, "result": None, "thinking": None,
        "error": None,
    }
    if record.result is not None:
        body["result"] = openai_wire.render_completion(record.result)
        body["thinking"] = _thinking(record.result)
    if record.error is not None:
        error = error_from_dict(record.error)
        body["error"] = {"message": error.message, "type": error.type, "code": error.code}
    return body


def _thinking(completion: Completion) -> list[dict[str, object]] | None:
    blocks: list[dict[str, object]] = []
    for part in completion.thinking:
        if part.redacted is not None:
            blocks.append({"redacted": part.redacted})
        else:
            blocks.append({"text": part.text, "signature": part.signature})
    return blocks or None
