"""Rows for the usage-writer benchmark: usage records exactly as a worker builds them, over a mix of tenants
and models with some failures, fallbacks and prompt-cache hits."""

import random
import time
import uuid
from collections.abc import Mapping

from shared.jobs import JobOutcome, JobRecord, usage_row
from shared.models import ChatRequest, JobStatus, Message, WireFormat

TENANTS = [f"tenant_{i:03d}" for i in range(50)]
MODELS = [  # (public model, provider, provider model, $ per 1k prompt tokens, $ per 1k completion tokens)
    ("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", 0.00015, 0.0006),
    ("gpt-4o", "openai", "gpt-4o-2024-08-06", 0.0025, 0.01),
    ("claude-sonnet", "anthropic", "claude-3-5-sonnet-20241022", 0.003, 0.015),
    ("claude-haiku", "anthropic", "claude-3-5-haiku-20241022", 0.0008, 0.004),
]

Rows = list[dict[str, object]]


def make_rows(count: int, rng: random.Random) -> Rows:
    """Usage rows exactly as a worker builds them (`shared.jobs.usage_row`): mixed tenants and models,
    ~3% failures, ~5% fallbacks, some prompt-cache hits."""
    requests = {m[0]: ChatRequest(model=m[0], messages=[Message(role="user", content="hi")]) for m in MODELS}
    return [_row(rng, requests) for _ in range(count)]


def _row(rng: random.Random, requests: Mapping[str, ChatRequest]) -> dict[str, object]:
    public, provider, model, prompt_price, completion_price = rng.choice(MODELS)
    record = JobRecord(id=f"job_{uuid.uuid4().hex}", tenant_id=rng.choice(TENANTS), status=JobStatus.RUNNING,
                       wire_format=WireFormat.OPENAI, request=requests[public], created_at=time.time())
    failed = rng.random() < 0.03
    prompt, completion = rng.randint(20, 4_000), 0 if failed else rng.randint(1, 1_500)
    outcome = JobOutcome(
        status=JobStatus.FAILED if failed else JobStatus.SUCCEEDED,
        error={"code": "upstream_error", "message": "provider returned 503"} if failed else None,
        cost_usd=(prompt * prompt_price + completion * completion_price) / 1000,
        fallback_used=rng.random() < 0.05, provider=provider, model=model, prompt_tokens=prompt,
        completion_tokens=completion, cached_prompt_tokens=rng.choice([0, 0, 0, prompt // 2]),
    )
    return usage_row(record, outcome, rng.randint(150, 15_000))
