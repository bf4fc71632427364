"""The 402 of a non-chat request (api/budget_refusal.py) says what the client can change, exactly: a legacy
completion's `max_tokens` is per choice, so the `max_tokens` it names fits with all of its choices; an
embedding has no output, so it is told to send less input."""

from datetime import UTC, datetime

from api.budget_refusal import Reserved, budget_refusal
from shared.config import Settings
from shared.endpoint import Endpoint
from shared.endpoint_requests import (
    EmbeddingRequest,
    TextCompletionRequest,
    estimate_input_tokens,
    most_output_tokens,
)
from shared.pricing import load_price_table
from shared.reservation import bounded_worst_case
from shared.routing_table import Target
from shared.tenant_cache import TenantSnapshot

PRICES = load_price_table(Settings(_env_file=None, redis_url="redis://unused:6379"))  # type: ignore[call-arg]
NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
INSTRUCT = Target(provider="openai", model="gpt-3.5-turbo-instruct",  # type: ignore[arg-type]
                  endpoints=frozenset({Endpoint.COMPLETIONS}))
EMBED = Target(provider="openai", model="text-embedding-3-small",  # type: ignore[arg-type]
               endpoints=frozenset({Endpoint.EMBEDDINGS}))


def _refusal(request: EmbeddingRequest | TextCompletionRequest, target: Target, budget_usd: float,
             used_usd: float = 0.0) -> str:
    prompt = estimate_input_tokens(request)
    worst = bounded_worst_case(prompt, most_output_tokens(request), [target], PRICES)
    tenant = TenantSnapshot(id="ten_b", name="b", budget_usd=budget_usd, budget_period="monthly")
    error = budget_refusal(tenant, Reserved(request, prompt, [target], worst), PRICES, int(used_usd * 1e6), NOW)
    assert error.status == 402
    return error.message


def _fits(request: TextCompletionRequest, budget_usd: float) -> bool:
    """Whether admission would reserve no more than the budget (the worst case it computes)."""
    worst = bounded_worst_case(estimate_input_tokens(request), most_output_tokens(request), [INSTRUCT], PRICES)
    return worst.cost_usd is not None and round(worst.cost_usd * 1e6) <= budget_usd * 1e6


def test_completion_refusal_names_a_max_tokens_per_choice_that_fits() -> None:
    request = TextCompletionRequest(model="inst", prompt="x" * 40, max_tokens=1000, n=2, best_of=4)
    message = _refusal(request, INSTRUCT, budget_usd=0.001)
    assert "4000 output tokens" in message and "max_tokens for each of the 4 choices it generates" in message
    per_choice = int(message.split("send max_tokens <= ")[1].split(" ")[0])
    assert "(per choice: it generates 4)" in message
    assert _fits(request.model_copy(update={"max_tokens": per_choice}), 0.001)
    assert not _fits(request.model_copy(update={"max_tokens": per_choice + 1}), 0.001)


def test_completion_refusal_counts_choices_of_every_prompt() -> None:
    request = TextCompletionRequest(model="inst", prompt=["a b", "c d", "e f"], max_tokens=500)
    message = _refusal(request, INSTRUCT, budget_usd=0.001)
    assert "each of the 3 choices" in message and "(per choice: it generates 3)" in message


def test_completion_refusal_without_max_tokens_names_openais_default() -> None:
    request = TextCompletionRequest(model="inst", prompt="p", n=128)
    message = _refusal(request, INSTRUCT, budget_usd=0.001)
    assert "OpenAI's default max_tokens of 16 for each of the 128 choices" in message


def test_completion_refusal_asks_for_fewer_choices_when_one_token_each_does_not_fit() -> None:
    request = TextCompletionRequest(model="inst", prompt="p", max_tokens=16, n=128)
    message = _refusal(request, INSTRUCT, budget_usd=0.0001)
    assert "ask for fewer than its 128 choices" in message and "send max_tokens" not in message


def test_single_choice_completion_refusal_names_max_tokens() -> None:
    message = _refusal(TextCompletionRequest(model="inst", prompt="p", max_tokens=4000), INSTRUCT, budget_usd=0.001)
    assert "send max_tokens <= " in message and "per choice" not in message


def test_embedding_refusal_asks_for_less_input_not_max_tokens() -> None:
    request = EmbeddingRequest(model="emb", input=["x" * 4000] * 100)
    message = _refusal(request, EMBED, budget_usd=0.001)
    assert "its input on 'text-embedding-3-small'" in message
    assert "send fewer or shorter inputs to fit" in message and "max_tokens" not in message


def test_embedding_refusal_on_a_spent_budget_says_it_is_exhausted() -> None:
    message = _refusal(EmbeddingRequest(model="emb", input="x"), EMBED, budget_usd=0.001, used_usd=0.001)
    assert "is exhausted" in message
