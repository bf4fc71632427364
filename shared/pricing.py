"""Model prices and the cost of a usage. Prices live in `shared/data/prices.yaml`; a provider model with a
dated suffix (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) is priced as its base model."""

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from shared.models import Usage

__all__ = ["Price", "PriceTable", "load_price_table"]

PRICES_FILE = Path(__file__).parent / "data" / "prices.yaml"
DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


class Price(BaseModel):
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float = Field(default=0.0, ge=0)


class PriceTable:
    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = prices

    def price_of(self, model: str) -> Price | None:
        return self._prices.get(model) or self._prices.get(DATE_SUFFIX.sub("", model))

    def cost_usd(self, model: str, usage: Usage) -> float:
        """Cost in USD, rounded to micro-dollars; unknown models cost 0 (issue #3 makes this a setting)."""
        price = self.price_of(model)
        if price is None:
            return 0.0
        cost = usage.prompt_tokens * price.input / 1e6 + usage.completion_tokens * price.output / 1e6
        return round(cost, 6)


@lru_cache
def load_price_table(path: Path = PRICES_FILE) -> PriceTable:
    raw = yaml.safe_load(path.read_text()) or {}
    return PriceTable({name: Price.model_validate(value) for name, value in raw.items()})
