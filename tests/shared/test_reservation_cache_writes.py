"""A prompt marked for Anthropic's prompt cache may be written to it, which costs more than plain input (1.25x
for five minutes, 2x for an hour): the budget reservation prices the worst case, as billing would."""

from shared.config import Settings
from shared.content import TextPart
from shared.models import ChatRequest, Message
from shared.pricing import load_price_table
from shared.reservation import cache_write_ttl, fitting_max_tokens, worst_case
from shared.routing_table import Target

PRICES = load_price_table(Settings(_env_file=None))
CLAUDE = Target(provider="anthropic", model="claude-sonnet-4-5")
GPT = Target(provider="openai", model="gpt-4o")


def request(cache_control: dict[str, str] | None) -> ChatRequest:
    return ChatRequest(model="m", max_tokens=100, system=[TextPart(text="s", cache_control=cache_control)],
                       messages=[Message(role="user", content="hi")])


def test_the_longest_marker_decides() -> None:
    assert cache_write_ttl(request(None)) is None
    assert cache_write_ttl(request({"type": "ephemeral"})) == "5m"
    assert cache_write_ttl(request({"type": "ephemeral", "ttl": "1h"})) == "1h"


def test_anthropic_reservation_prices_the_prompt_as_a_cache_write() -> None:
    price = PRICES.price_for(CLAUDE.model)
    assert price is not None
    plain = worst_case(request(None), 10_000, [CLAUDE], PRICES).cost_usd
    five = worst_case(request({"type": "ephemeral"}), 10_000, [CLAUDE], PRICES).cost_usd
    hour = worst_case(request({"type": "ephemeral", "ttl": "1h"}), 10_000, [CLAUDE], PRICES).cost_usd
    output = 100 * price.output / 1e6
    assert plain is not None and five is not None and hour is not None
    assert round(plain - output, 9) == round(10_000 * price.input / 1e6, 9)
    assert round(five - output, 9) == round(10_000 * price.cache_write / 1e6, 9)
    assert round(hour - output, 9) == round(10_000 * price.cache_write_1h / 1e6, 9)
    assert plain < five < hour


def test_openai_reservation_ignores_markers() -> None:
    assert worst_case(request({"type": "ephemeral", "ttl": "1h"}), 10_000, [GPT], PRICES).cost_usd == \
        worst_case(request(None), 10_000, [GPT], PRICES).cost_usd


def test_fitting_max_tokens_leaves_room_for_the_write() -> None:
    available = 100_000  # micro-dollars
    assert fitting_max_tokens(10_000, [CLAUDE], PRICES, available, "1h") < \
        fitting_max_tokens(10_000, [CLAUDE], PRICES, available, None)
