"""How far billing lags: the age of the oldest usage record still in the Redis usage stream (written records
are deleted from it, so its first entry is the oldest unwritten one), how many wait, and when a usage writer
last completed a flush. Usage writers (worker/usage_writer.py) report their flushes here and export the lag
as metrics; `/health` reads it. Reading never touches the consumer group, so it works while the group is
gone (after Redis lost its data) and a writer is failing."""

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import USAGE_STREAM, USAGE_WRITERS_KEY

__all__ = ["USAGE_LAG_LIMIT_S", "UsageLag", "read_usage_lag", "report_flush_on"]

# Billing further behind than this is a stalled or lagging writer (`/health` fails, the alert fires). A worker
# that dies holding a batch leaves it to another writer after CLAIM_IDLE_MS (60 s), checked every 30 s, so a
# healthy gateway can lag up to ~90 s once; nothing else makes it lag more than a few flush intervals.
USAGE_LAG_LIMIT_S = 120.0
# A writer's report outlives a writer that stopped by this much, then it is pruned.
REPORT_RETENTION_MS = 86_400_000


@dataclass(frozen=True)
class UsageLag:
    backlog: int  # records waiting in the stream
    oldest_unwritten_s: float  # 0 when none waits
    last_flush_s: float | None  # since any writer last completed a flush; None when none has reported

    @property
    def ok(self) -> bool:
        stalled = self.last_flush_s is not None and self.last_flush_s > USAGE_LAG_LIMIT_S
        return self.oldest_unwritten_s <= USAGE_LAG_LIMIT_S and not stalled

    def as_check(self) -> dict[str, object]:
        """The `usage` check of `/health`."""
        check: dict[str, object] = {"ok": self.ok, "backlog": self.backlog,
                                    "oldest_unwritten_s": round(self.oldest_unwritten_s, 1),
                                    "last_flush_s": None if self.last_flush_s is None else round(self.last_flush_s, 1)}
        if self.oldest_unwritten_s > USAGE_LAG_LIMIT_S:
            check["detail"] = (f"the oldest unwritten usage record is {self.oldest_unwritten_s:.0f} s old: "
                               "billing is not reaching the database")
        elif not self.ok:
            check["detail"] = f"no usage writer has completed a flush for {self.last_flush_s:.0f} s"
        return check


async def read_usage_lag(redis: Redis) -> UsageLag:
    """One round trip. Ages use Redis's clock, which also stamped the stream ids, so hosts' clocks never skew them."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.xrange(USAGE_STREAM, count=1)
        pipe.xlen(USAGE_STREAM)
        pipe.zrevrange(USAGE_WRITERS_KEY, 0, 0, withscores=True)
        (seconds, micros), oldest, backlog, newest_report = await pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    oldest_ms = int(oldest[0][0].split(b"-")[0]) if oldest else now_ms
    last_flush_s = (now_ms - float(newest_report[0][1])) / 1000 if newest_report else None
    return UsageLag(backlog=int(backlog), oldest_unwritten_s=max(0.0, (now_ms - oldest_ms) / 1000),
                    last_flush_s=None if last_flush_s is None else max(0.0, last_flush_s))


def report_flush_on(pipe: Pipeline, consumer: str, flushed_at_ms: int) -> None:
    """Record on `pipe` that `consumer` completed a flush at `flushed_at_ms`, and prune long-gone writers."""
    pipe.zadd(USAGE_WRITERS_KEY, {consumer: flushed_at_ms})
    pipe.zremrangebyscore(USAGE_WRITERS_KEY, "-inf", flushed_at_ms - REPORT_RETENTION_MS)
