"""Limits in Redis: exact admission under concurrency from several processes, GCRA refill, token limits
corrected at settlement, concurrency slots, and budgets that concurrent requests cannot overspend."""

import asyncio
import multiprocessing
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio

from shared.keys import budget_holds_sum_key, spend_key
from shared.limits import (
    UNBOUNDED_RESERVE_MICROS,
    Budget,
    LimitRequest,
    admit,
    budget_period,
    close_seed,
    late_settlements,
    open_seed,
    queue_settlement,
    seed_budget,
    spend_keys,
)

REDIS_URL = "redis://127.0.0.1:6379/5"


@pytest.fixture
async def client():
    connection = redis.asyncio.Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


def _request(tenant: str, **overrides: object) -> LimitRequest:
    values: dict[str, object] = {
        "tenant_id": tenant, "job_id": f"job_{uuid.uuid4().hex}", "rpm_limit": 0, "tpm_limit": 0, "tokens": 0,
        "concurrency_limit": 0, "concurrency_expiry_s": 60, "budget": None, "reserve_usd": 0.0,
    }
    values.update(overrides)
    return LimitRequest(**values)  # type: ignore[arg-type]


def _burst_in_process(tenant: str, count: int, rpm: int, queue: "multiprocessing.Queue[int]") -> None:
    async def run() -> int:
        connection = redis.asyncio.Redis.from_url(REDIS_URL, max_connections=200)
        now = datetime.now(UTC)
        results = await asyncio.gather(*(admit(connection, _request(tenant, rpm_limit=rpm), now)
                                         for _ in range(count)))
        await connection.aclose()
        return sum(result.allowed for result in results)

    queue.put(asyncio.run(run()))


def test_limits_admit_exactly_rpm_across_processes() -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    queue: multiprocessing.Queue[int] = multiprocessing.get_context("spawn").Queue()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_burst_in_process, args=(tenant, 125, 100, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    admitted = sum(queue.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert admitted == 100


async def test_limits_rpm_window_slides_without_boundary_burst(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC)
    first_half = [await admit(client, _request(tenant, rpm_limit=60), start) for _ in range(30)]
    later = start + timedelta(seconds=45)
    second_half = [await admit(client, _request(tenant, rpm_limit=60), later) for _ in range(31)]
    assert all(r.allowed for r in first_half) and sum(r.allowed for r in second_half) == 30
    refused = second_half[-1]
    assert refused.reason == "requests" and refused.retry_after_s == pytest.approx(15.0, abs=0.01)
    # 60 s after the first requests their slots come back, and only theirs: never 2x in any window.
    after_first = start + timedelta(seconds=60, milliseconds=1)
    again = [await admit(client, _request(tenant, rpm_limit=60), after_first) for _ in range(31)]
    assert sum(r.allowed for r in again) == 30


async def test_limits_report_remaining_and_reset(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    first = await admit(client, _request(tenant, rpm_limit=10), now)
    second = await admit(client, _request(tenant, rpm_limit=10), now)
    assert (first.rpm_remaining, second.rpm_remaining) == (9, 8)
    assert second.rpm_reset_s == pytest.approx(60.0, abs=0.01)


async def test_limits_admit_exactly_tpm(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    results = await asyncio.gather(*(admit(client, _request(tenant, tpm_limit=1000, tokens=150), now)
                                     for _ in range(20)))
    assert sum(r.allowed for r in results) == 6  # 6 x 150 = 900 fits, a 7th would be 1050
    rejected = [r for r in results if not r.allowed]
    assert all(r.reason == "tokens" for r in rejected)


async def test_limits_refuse_request_larger_than_tpm(client: redis.asyncio.Redis) -> None:
    result = await admit(client, _request(f"ten_{uuid.uuid4().hex[:8]}", tpm_limit=100, tokens=500),
                         datetime.now(UTC))
    assert not result.allowed and result.reason == "tokens_too_large"


async def test_limits_settlement_refunds_unused_tokens(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    first_request = _request(tenant, tpm_limit=1000, tokens=900)
    first = await admit(client, first_request, now)
    assert first.allowed
    assert not (await admit(client, _request(tenant, tpm_limit=1000, tokens=500), now)).allowed
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, first.admission, first_request.job_id, tokens_used=100, cost_usd=0, now=now)
        await pipe.execute()
    assert (await admit(client, _request(tenant, tpm_limit=1000, tokens=500), now)).allowed


async def test_limits_concurrency_slots_are_freed_by_settlement(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    held = [await admit(client, _request(tenant, concurrency_limit=2, job_id=f"j{i}"), now) for i in range(3)]
    assert [r.allowed for r in held] == [True, True, False]
    assert held[2].reason == "concurrency"
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, held[0].admission, "j0", tokens_used=0, cost_usd=0, now=now)
        await pipe.execute()
    assert (await admit(client, _request(tenant, concurrency_limit=2, job_id="j3"), now)).allowed


async def test_limits_budget_never_overspent_by_concurrent_requests(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    budget = Budget(limit_usd=1.0, period="monthly")
    await seed_budget(client, tenant, "monthly", now, spent_usd=0.0)
    requests = [_request(tenant, budget=budget, reserve_usd=0.1) for _ in range(50)]
    results = await asyncio.gather(*(admit(client, request, now) for request in requests))
    admitted = [(request, r) for request, r in zip(requests, results, strict=True) if r.allowed]
    assert len(admitted) == 10
    assert all(r.reason == "budget" for r in results if not r.allowed)
    async with client.pipeline(transaction=True) as pipe:
        for request, result in admitted:
            queue_settlement(pipe, result.admission, request.job_id, tokens_used=0, cost_usd=0.04, now=now)
        await pipe.execute()
    period_id, _ = budget_period("monthly", now)
    spent = int(await client.hget(spend_key(tenant, period_id), "spent"))
    held = int(await client.get(budget_holds_sum_key(tenant)))
    assert spent == 400_000 and held == 0  # settled to actual cost, reservations released
    assert (await admit(client, _request(tenant, budget=budget, reserve_usd=0.5), now)).allowed


async def test_limits_budget_must_be_seeded_before_use(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    request = _request(tenant, budget=Budget(limit_usd=1.0, period="daily"), reserve_usd=0.1)
    first = await admit(client, request, now)
    assert not first.allowed and first.budget_unseeded
    await seed_budget(client, tenant, "daily", now, spent_usd=0.95)
    second = await admit(client, request, now)
    assert not second.allowed and second.reason == "budget"


def test_limits_budget_periods_and_resets() -> None:
    now = datetime(2026, 12, 31, 15, 0, tzinfo=UTC)
    assert budget_period("monthly", now) == ("2026-12", datetime(2027, 1, 1, tzinfo=UTC))
    assert budget_period("daily", now) == ("2026-12-31", datetime(2027, 1, 1, tzinfo=UTC))
    assert budget_period("weekly", now) == ("2026-W53", datetime(2027, 1, 4, tzinfo=UTC))
    assert budget_period("none", now) == ("all", None)


async def test_limits_rejection_moves_no_counter(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    await seed_budget(client, tenant, "monthly", now, spent_usd=0.0)
    budget = Budget(limit_usd=0.05, period="monthly")
    rejected = await admit(client, _request(tenant, rpm_limit=5, budget=budget, reserve_usd=0.1), now)
    assert rejected.reason == "budget"
    fresh = await admit(client, _request(tenant, rpm_limit=5), now)
    assert fresh.rpm_remaining == 4  # the budget rejection did not consume a request


async def test_limits_budget_resets_with_the_next_period(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    november = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    budget = Budget(limit_usd=0.1, period="monthly")
    await seed_budget(client, tenant, "monthly", november, spent_usd=0.1)
    assert (await admit(client, _request(tenant, budget=budget, reserve_usd=0.01), november)).reason == "budget"
    december = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    fresh = await admit(client, _request(tenant, budget=budget, reserve_usd=0.01), december)
    assert fresh.budget_unseeded  # a new period's counters start from the database (nothing spent yet)
    await seed_budget(client, tenant, "monthly", december, spent_usd=0.0)
    assert (await admit(client, _request(tenant, budget=budget, reserve_usd=0.01), december)).allowed


async def test_limits_settlement_of_paid_job_without_budget_or_reservation(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    request = _request(tenant, rpm_limit=10)
    result = await admit(client, request, now)
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, result.admission, request.job_id, tokens_used=10, cost_usd=0.000085, now=now)
        assert await pipe.execute() == [1]
    # No counter was seeded, so none is made up from this one job: a seed counts it from its usage record.
    assert await client.exists(*spend_keys(tenant, now)) == 0


async def test_limits_settlement_adds_spend_to_every_seeded_period(client: redis.asyncio.Redis) -> None:
    # Spend made while the budget is daily (or while there is none) is in the monthly counter too, so a
    # budget switched back to monthly counts it (issue 12: $1.89 spent against a $1.00 monthly budget).
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    for period in ("daily", "monthly", "none"):
        await seed_budget(client, tenant, period, now, spent_usd=0.5)
    request = _request(tenant, budget=Budget(1.0, "daily"), reserve_usd=0.3)
    result = await admit(client, request, now)
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, result.admission, request.job_id, tokens_used=10, cost_usd=0.25, now=now)
        await pipe.execute()
    daily, weekly, monthly, total = spend_keys(tenant, now)
    assert [await client.hget(key, "spent") for key in (daily, monthly, total)] == [b"750000"] * 3
    assert not await client.exists(weekly)
    monthly_budget = Budget(1.0, "monthly")
    assert (await admit(client, _request(tenant, budget=monthly_budget, reserve_usd=0.3), now)).reason == "budget"


async def test_limits_reservation_without_budget_counts_once_a_budget_is_set(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    in_flight = await admit(client, _request(tenant, reserve_usd=0.8), now)  # admitted while no budget
    assert in_flight.allowed and in_flight.admission.reserved_micros == 800_000
    await seed_budget(client, tenant, "monthly", now, spent_usd=0.0)
    refused = await admit(client, _request(tenant, budget=Budget(1.0, "monthly"), reserve_usd=0.3), now)
    assert refused.reason == "budget" and refused.budget_used_micros == 800_000


async def test_limits_unbounded_reservation_fits_no_budget_and_is_released(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    await seed_budget(client, tenant, "monthly", now, spent_usd=0.0)
    huge = Budget(1e9, "monthly")  # the largest budget the admin API takes
    assert (await admit(client, _request(tenant, budget=huge, reserve_usd=None), now)).reason == "budget"
    request = _request(tenant, reserve_usd=None)
    unbudgeted = await admit(client, request, now)
    assert unbudgeted.allowed and unbudgeted.admission.reserved_micros == UNBOUNDED_RESERVE_MICROS
    assert not (await admit(client, _request(tenant, budget=huge, reserve_usd=1.0), now)).allowed
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, unbudgeted.admission, request.job_id, tokens_used=10, cost_usd=0.5, now=now)
        await pipe.execute()
    assert (await admit(client, _request(tenant, budget=huge, reserve_usd=1.0), now)).allowed


async def test_limits_lapsed_reservations_are_dropped(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    await seed_budget(client, tenant, "monthly", now, spent_usd=0.0)
    budget = Budget(1.0, "monthly")
    assert (await admit(client, _request(tenant, budget=budget, reserve_usd=0.9, hold_expiry_s=60), now)).allowed
    assert (await admit(client, _request(tenant, budget=budget, reserve_usd=0.9), now)).reason == "budget"
    later = now + timedelta(seconds=61)  # the job's record is gone: it can never settle its reservation
    assert (await admit(client, _request(tenant, budget=budget, reserve_usd=0.9), later)).allowed


async def test_limits_seed_counts_settlements_during_it_once(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    ticket = await open_seed(client, tenant, "monthly", now)
    assert not ticket.ready
    request = _request(tenant, budget=Budget(1.0, "monthly"), reserve_usd=0.1)
    assert (await admit(client, request, now)).budget_unseeded  # admission waits for the seed
    joined = await open_seed(client, tenant, "monthly", now)
    assert (joined.token, joined.last_usage_id) == (ticket.token, ticket.last_usage_id)
    settled = await admit(client, _request(tenant, job_id="j-late"), now)
    late = await late_settlements(client, ticket)
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, settled.admission, "j-late", tokens_used=0, cost_usd=0.2, now=now)
        await pipe.execute()
    assert await close_seed(client, ticket, 300_000, late) is None  # j-late settled after `late` was read
    late = await late_settlements(client, ticket)
    assert late == {"j-late"}
    assert await close_seed(client, ticket, 300_000, late) is True
    assert await close_seed(client, joined, 300_000, late) is False  # already closed by the first seeder
    key = spend_key(tenant, budget_period("monthly", now)[0])
    assert await client.hgetall(key) == {b"spent": b"500000"}
    assert (await open_seed(client, tenant, "monthly", now)).ready
    assert (await admit(client, request, now)).allowed


async def test_limits_report_budget_used_after_admission(client: redis.asyncio.Redis) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    await seed_budget(client, tenant, "daily", now, spent_usd=0.25)
    result = await admit(client, _request(tenant, budget=Budget(1.0, "daily"), reserve_usd=0.25), now)
    assert result.allowed and result.budget_used_usd == pytest.approx(0.5)
    assert (await admit(client, _request(tenant), now)).budget_used_usd is None
