"""shared.pricing: the bundled table, PRICES_FILE overrides, the unknown-model policy, costs and worst cases."""

from pathlib import Path

import pytest

from shared.config import Settings
from shared.errors import InvalidRequest
from shared.models import Usage
from shared.pricing import Price, PriceTable, load_price_table


def settings(**changes: object) -> Settings:
    return Settings(_env_file=None, **changes)  # type: ignore[call-arg]


def table(policy: str = "default") -> PriceTable:
    return load_price_table(settings(unknown_model_pricing=policy))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return path


def test_cost_usd_matches_the_table_with_cached_tokens() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_prompt_tokens=200)
    # gpt-4o: 800 uncached at $2.50/M + 200 cached at $1.25/M + 500 output at $10/M
    assert table().cost_usd("gpt-4o", usage) == pytest.approx(0.00725, abs=1e-12)
    assert table().cost_usd("gpt-4o", usage) == round((800 * 2.5 + 200 * 1.25 + 500 * 10.0) / 1e6, 9)


def test_cost_usd_prices_dated_models_as_their_base() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=10)
    prices = table()
    assert prices.cost_usd("gpt-4o-2024-08-06", usage) == prices.cost_usd("gpt-4o", usage)
    assert prices.cost_usd("claude-sonnet-4-5-20250929", usage) == round((100 * 3.0 + 10 * 15.0) / 1e6, 9)
    assert prices.is_priced("claude-3-5-haiku-latest")


def test_cost_usd_tiny_request_is_not_rounded_to_zero() -> None:
    assert table().cost_usd("gpt-4.1-nano", Usage(prompt_tokens=1)) == pytest.approx(1e-7, abs=1e-15)


def test_cost_usd_clamps_cached_tokens_to_the_prompt() -> None:
    usage = Usage(prompt_tokens=10, cached_prompt_tokens=50)
    assert table().cost_usd("gpt-4o", usage) == round(10 * 1.25 / 1e6, 9)


def test_cost_usd_unknown_model_uses_the_default_price() -> None:
    prices = load_price_table(settings(default_input_price_per_m=4.0, default_output_price_per_m=8.0))
    assert not prices.is_priced("mystery-model")
    assert prices.price_for("mystery-model") == Price(input=4.0, output=8.0, cached_input=4.0)
    assert prices.cost_usd("mystery-model", Usage(prompt_tokens=1000, completion_tokens=1000)) == 0.012


def test_cost_usd_unknown_model_under_refuse_costs_nothing() -> None:
    prices = table("refuse")
    assert prices.price_for("mystery-model") is None
    assert prices.cost_usd("mystery-model", Usage(prompt_tokens=1000, completion_tokens=1000)) == 0.0
    assert prices.worst_case_cost_usd("mystery-model", 1000, 1000) == 0.0


def test_worst_case_cost_usd_ignores_cache_and_uses_max_tokens() -> None:
    assert table().worst_case_cost_usd("gpt-4o", 1000, 4096) == round((1000 * 2.5 + 4096 * 10.0) / 1e6, 9)


def test_check_priced_refuses_unpriced_models_under_refuse() -> None:
    with pytest.raises(InvalidRequest) as caught:
        table("refuse").check_priced(["gpt-4o", "mystery-model"])
    assert caught.value.code == "model_not_priced" and caught.value.status == 400
    assert "mystery-model" in caught.value.message


def test_check_priced_accepts_priced_models_and_the_default_policy() -> None:
    table("refuse").check_priced(["gpt-4o-2024-08-06", "claude-haiku-4-5"])
    table("default").check_priced(["mystery-model"])


def test_load_price_table_override_file_replaces_and_adds(tmp_path: Path) -> None:
    path = write(tmp_path, "gpt-4o: {input: 1.0, output: 2.0, cached_input: 0.5}\nhouse-model: {input: 3, output: 6}\n")
    prices = load_price_table(settings(prices_file=path, unknown_model_pricing="refuse"))
    # A new price for a bundled model keeps its known maximum output; a new model has none unless given.
    assert prices.price_for("gpt-4o") == Price(input=1.0, output=2.0, cached_input=0.5, max_output_tokens=16384)
    assert prices.price_for("house-model") == Price(input=3.0, output=6.0, cached_input=3.0)
    assert prices.is_priced("claude-haiku-4-5")
    assert table().price_for("gpt-4o") == Price(input=2.5, output=10.0, cached_input=1.25, max_output_tokens=16384)


def test_max_output_tokens_from_table_override_or_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, "gpt-4o: {input: 1, output: 2, max_output_tokens: 4096}\nhouse-model: {input: 3, output: 6, "
                           "max_output_tokens: 8192}\n")
    prices = load_price_table(settings(prices_file=path))
    assert (prices.max_output_tokens("gpt-4o"), prices.max_output_tokens("house-model")) == (4096, 8192)
    assert table().max_output_tokens("gpt-4o-2024-08-06") == 16384
    assert table().max_output_tokens("claude-sonnet-4-5") == 64000
    assert table().max_output_tokens("mystery-model") is None  # priced by default, maximum unknown
    assert table().max_output_tokens("fake-model") is None


def test_every_bundled_paid_model_has_a_maximum_output() -> None:
    prices = table()
    paid = [model for model in prices._prices if (prices.price_for(model) or Price(input=0, output=0)).output > 0]
    assert paid and all(prices.max_output_tokens(model) for model in paid)


@pytest.mark.parametrize(
    "text",
    [
        "gpt-4o: {input: -1, output: 2}\n",
        "gpt-4o: {input: 1}\n",
        "gpt-4o: {input: 1, output: 2, cache_input: 1}\n",
        "gpt-4o: {input: 1, output: 2, max_output_tokens: 0}\n",
        "- just\n- a list\n",
        "gpt-4o: {input: [1, \n",
    ],
)
def test_load_price_table_bad_override_file_names_prices_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match="PRICES_FILE"):
        load_price_table(settings(prices_file=path))


def test_load_price_table_missing_override_file_names_prices_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"PRICES_FILE .*missing\.yaml"):
        load_price_table(settings(prices_file=tmp_path / "missing.yaml"))


def test_price_table_rejects_unknown_policy() -> None:
    with pytest.raises(ValueError, match="unknown_policy"):
        PriceTable({}, unknown_policy="free", default_price=Price(input=1, output=1))
