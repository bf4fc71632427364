"""Logging shared by the API and workers: one JSON object per line carrying the request id and job id of
the work in progress (context variables), so one request can be followed from API to worker. Never log API
keys or prompt text: log ids, counts and codes."""

import json
import logging
import time
from contextvars import ContextVar

__all__ = ["JOB_ID", "REQUEST_ID", "JsonFormatter", "configure_logging"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
JOB_ID: ContextVar[str | None] = ContextVar("job_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STANDARD_FIELDS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in (("request_id", REQUEST_ID), ("job_id", JOB_ID)):
            value = getattr(record, name, None) or var.get()
            if value:
                entry[name] = value
        entry.update({k: v for k, v in record.__dict__.items() if k not in STANDARD_FIELDS and k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, *, json_format: bool = True) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT))
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "arq", "arq.worker"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # httpx logs every request URL at INFO; the access log below is ours.
    for name in ("httpx", "httpx2", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
