"""arq's end of a job, committed with the job record's end (shared/lua/finish.lua) rather than in a
transaction of its own: one script, one round trip, where the worker used to send two."""

import time
from dataclasses import dataclass

__all__ = ["QUEUE_END_KEYS", "QueueEnd"]

QUEUE_END_KEYS = 7


@dataclass
class QueueEnd:
    """arq's end of a job that a GatewayWorker started (worker/gateway_worker.py), committed by finish.lua in
    the same script as the record's end: the keys it clears, the tenant's running set (None when unknown) and
    the drain rate's bucket prefix. `committed` is set once the script ran, so the worker's own finish
    transaction is skipped."""

    job_id: str
    in_progress_key: str
    retry_key: str
    payload_key: str
    queue_key: str
    abort_key: str
    running_key: str | None
    drained_prefix: str
    drained_ttl_s: int
    committed: bool = False

    def keys(self, job_hash: str) -> list[str]:
        return [self.in_progress_key, self.retry_key, self.payload_key, self.queue_key, self.abort_key,
                self.running_key or job_hash, f"{self.drained_prefix}{int(time.time())}"]
