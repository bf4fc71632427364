"""The request log's retention (worker/retention.py): one worker per interval prunes the records older than
the retention, none when retention is 0, and the periodic loop keeps going after a failed prune."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.config import Settings
from tests.factories import make_fake_redis
from worker.retention import prune_once, prune_periodically

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


class Pruner:
    def __init__(self, fail_first: bool = False) -> None:
        self.cutoffs: list[datetime | None] = []
        self.nows: list[datetime] = []
        self.fail_first = fail_first

    async def __call__(self, usage_before: datetime | None, now: datetime) -> int:
        self.cutoffs.append(usage_before)
        self.nows.append(now)
        if self.fail_first and len(self.cutoffs) == 1:
            raise ConnectionError("database down")
        return 3


async def test_prune_once_deletes_records_older_than_the_retention() -> None:
    pruner = Pruner()
    removed = await prune_once(make_fake_redis(), pruner, retention_days=40, interval_s=60, now=NOW)
    assert removed == 3 and pruner.cutoffs == [NOW - timedelta(days=40)] and pruner.nows == [NOW]


async def test_prune_once_runs_on_one_worker_per_interval() -> None:
    redis, first, second = make_fake_redis(), Pruner(), Pruner()
    assert await prune_once(redis, first, retention_days=40, interval_s=60, now=NOW) == 3
    assert await prune_once(redis, second, retention_days=40, interval_s=60, now=NOW) is None
    assert second.cutoffs == []


async def test_prune_once_keeps_usage_but_expires_content_when_retention_is_zero() -> None:
    pruner = Pruner()
    assert await prune_once(make_fake_redis(), pruner, retention_days=0, interval_s=60, now=NOW) == 3
    assert pruner.cutoffs == [None] and pruner.nows == [NOW]


async def test_prune_periodically_retries_after_a_failed_prune() -> None:
    pruner, stop = Pruner(fail_first=True), asyncio.Event()
    task = asyncio.create_task(prune_periodically(make_fake_redis(), pruner, retention_days=40, interval_s=0.05,
                                                  stop=stop, clock=lambda: NOW))
    for _ in range(100):
        if len(pruner.cutoffs) >= 2:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=1)
    assert len(pruner.cutoffs) >= 2


@pytest.mark.parametrize("days", [1, 31])
def test_settings_refuse_a_retention_shorter_than_a_budget_month(days: int) -> None:
    with pytest.raises(ValueError, match="USAGE_RETENTION_DAYS"):
        Settings(usage_retention_days=days)


def test_settings_accept_zero_or_a_month_of_retention() -> None:
    assert Settings(usage_retention_days=0).usage_retention_days == 0
    assert Settings(usage_retention_days=32).usage_retention_days == 32
