"""Prompt-cache prices: reads, 5-minute and 1-hour writes each at their price, the rest of the prompt at the
input price, reasoning billed once as output; write prices default from the input price."""

from pathlib import Path

import pytest

from shared.config import Settings
from shared.models import Usage
from shared.pricing import BUNDLED_PRICES_FILE, Price, load_price_table


def _table(prices_file: Path | None = None):  # type: ignore[no-untyped-def]
    return load_price_table(Settings(_env_file=None, prices_file=prices_file))  # type: ignore[call-arg]


def test_anthropic_usage_with_cache_reads_and_both_writes() -> None:
    # claude-sonnet-4-5: input $3, cached $0.30, 5-minute write $3.75, 1-hour write $6, output $15 per M.
    # 10,000 prompt tokens = 1,000 read + 2,000 written (5 min) + 3,000 written (1 h) + 4,000 uncached.
    usage = Usage(prompt_tokens=10_000, cached_prompt_tokens=1_000, cache_write_tokens=2_000,
                  cache_write_1h_tokens=3_000, completion_tokens=500, reasoning_tokens=300)
    expected = (4_000 * 3.0 + 1_000 * 0.30 + 2_000 * 3.75 + 3_000 * 6.0 + 500 * 15.0) / 1e6
    assert _table().cost_usd("claude-sonnet-4-5", usage) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.0453, abs=1e-12)


def test_reasoning_tokens_are_billed_once_as_part_of_completion_tokens() -> None:
    with_reasoning = Usage(prompt_tokens=100, completion_tokens=1_000, reasoning_tokens=800)
    without = Usage(prompt_tokens=100, completion_tokens=1_000)
    # o3: $2 input, $8 output: 100 * 2 + 1,000 * 8 per M, whatever part of the output was reasoning.
    assert _table().cost_usd("o3", with_reasoning) == _table().cost_usd("o3", without) == pytest.approx(0.0082)


def test_openai_cached_input_as_before() -> None:
    usage = Usage(prompt_tokens=2_000, cached_prompt_tokens=1_500, completion_tokens=10)
    assert _table().cost_usd("gpt-4.1", usage) == pytest.approx((500 * 2.0 + 1_500 * 0.5 + 10 * 8.0) / 1e6)


def test_counts_beyond_the_prompt_never_go_negative() -> None:
    """A provider's figures that do not add up are clamped: writes beyond the prompt are not billed twice."""
    usage = Usage(prompt_tokens=100, cached_prompt_tokens=80, cache_write_tokens=50, completion_tokens=0)
    assert _table().cost_usd("claude-haiku-4-5", usage) == pytest.approx((80 * 0.10 + 20 * 1.25) / 1e6)


def test_write_prices_default_from_the_input_price() -> None:
    price = Price(input=4.0, output=20.0)
    assert (price.cached_input, price.cache_write, price.cache_write_1h) == (4.0, 5.0, 8.0)
    explicit = Price(input=4.0, output=20.0, cache_write=4.5, cache_write_1h=7.0, cached_input=0.4)
    assert (explicit.cached_input, explicit.cache_write, explicit.cache_write_1h) == (0.4, 4.5, 7.0)


def test_every_bundled_anthropic_model_lists_its_write_prices() -> None:
    text = BUNDLED_PRICES_FILE.read_text()
    table = _table()
    for model in table.models():
        price = table.price_for(model)
        assert price is not None
        if model.startswith("claude"):
            line = next(line for line in text.splitlines() if line.startswith(f"{model}:"))
            assert "cache_write:" in line and "cache_write_1h:" in line, model
            assert price.cache_write == pytest.approx(price.input * 1.25), model
            assert price.cache_write_1h == pytest.approx(price.input * 2), model
            assert price.cached_input == pytest.approx(price.input * 0.1), model


def test_prices_file_override_without_write_prices_gets_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("claude-new: {input: 2.0, output: 10.0, cached_input: 0.2}\n")
    usage = Usage(prompt_tokens=1_000, cache_write_tokens=1_000, completion_tokens=0)
    assert _table(path).cost_usd("claude-new", usage) == pytest.approx(1_000 * 2.5 / 1e6)
