"""Model prices, and the cost of a usage or of a request's worst case. The bundled table lives in
`shared/data/prices.yaml`; a `PRICES_FILE` in the same format overrides or adds entries. A provider model
with a dated suffix (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) is priced as its base model.

Models missing from the table follow `UNKNOWN_MODEL_PRICING`: "default" prices them at the configured
default price, "refuse" leaves them unpriced so callers can refuse them with `check_priced` before any
upstream call. The worker prices finished jobs with `cost_usd`; budget checks use `worst_case_cost_usd`. An
entry may also give the model's `max_output_tokens`, the longest answer it can write: what a request without
`max_tokens` reserves (shared/reservation.py)."""

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.config import Settings
from shared.errors import InvalidRequest
from shared.models import Usage

__all__ = ["BUNDLED_PRICES_FILE", "Price", "PriceTable", "load_price_table"]

BUNDLED_PRICES_FILE = Path(__file__).parent / "data" / "prices.yaml"
DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")
PER_MILLION = 1_000_000
COST_DECIMALS = 9  # nano-dollars: a one-token request on a cheap model still costs more than 0
POLICIES = ("default", "refuse")


CACHE_WRITE_MULTIPLIER = 1.25
"""A prompt-cache write with the 5-minute lifetime costs 1.25x the input price (Anthropic's list prices)."""
CACHE_WRITE_1H_MULTIPLIER = 2.0
"""A prompt-cache write with the 1-hour lifetime costs 2x the input price (Anthropic's list prices)."""


class Price(BaseModel):
    """USD per million tokens. Without `cached_input`, cached prompt tokens (read from the provider's prompt
    cache) cost the full input price; without `cache_write` / `cache_write_1h`, tokens written to the cache
    cost the input price times 1.25 (5-minute lifetime) / 2 (1-hour lifetime), Anthropic's multipliers (OpenAI
    reports no cache writes: its caching is automatic and writes cost the plain input price, so these never
    apply to its usage). Without `max_output_tokens`, the model's longest answer is unknown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float = Field(default=0.0, ge=0)
    cache_write: float = Field(default=0.0, ge=0)
    cache_write_1h: float = Field(default=0.0, ge=0)
    max_output_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _cache_prices_default_from_input(cls, data: object) -> object:
        if not isinstance(data, Mapping) or "input" not in data:
            return data
        try:
            price = float(data["input"])
        except (TypeError, ValueError):
            return data  # the field's own validation says what is wrong
        defaults = {"cached_input": price, "cache_write": price * CACHE_WRITE_MULTIPLIER,
                    "cache_write_1h": price * CACHE_WRITE_1H_MULTIPLIER}
        return {**{name: value for name, value in defaults.items() if name not in data}, **data}


class PriceTable:
    def __init__(self, prices: Mapping[str, Price], *, unknown_policy: str, default_price: Price) -> None:
        if unknown_policy not in POLICIES:
            raise ValueError(f"unknown_policy must be one of {POLICIES}, not {unknown_policy!r}")
        self._prices = dict(prices)
        self._unknown_policy = unknown_policy
        self._default_price = default_price

    def _listed(self, model: str) -> Price | None:
        return self._prices.get(model) or self._prices.get(DATE_SUFFIX.sub("", model))

    def models(self) -> list[str]:
        """The models the table lists (bundled and PRICES_FILE)."""
        return list(self._prices)

    def is_priced(self, model: str) -> bool:
        """True if the table lists the model (or its undated base model)."""
        return self._listed(model) is not None

    def price_for(self, model: str) -> Price | None:
        """The listed price, else the default price under the "default" policy, else None."""
        listed = self._listed(model)
        if listed is not None:
            return listed
        return self._default_price if self._unknown_policy == "default" else None

    def max_output_tokens(self, model: str) -> int | None:
        """The longest answer the model can write, when the table says (never for an unlisted model)."""
        listed = self._listed(model)
        return listed.max_output_tokens if listed is not None else None

    def cost_usd(self, model: str, usage: Usage) -> float:
        """What a usage costs. `prompt_tokens` is the whole input (shared.models.Usage): the tokens read from
        the prompt cache (`cached_prompt_tokens`) at `cached_input`, those written to it at `cache_write`
        (5 minutes) or `cache_write_1h`, and the rest at `input`. `completion_tokens` at `output`: they
        include the reasoning tokens (OpenAI's `completion_tokens`, Anthropic's `output_tokens` both count
        thinking), so `reasoning_tokens` is never billed on its own. An unpriced model costs 0 (under
        "refuse" callers turn such requests away before they run)."""
        price = self.price_for(model)
        if price is None:
            return 0.0
        left = usage.prompt_tokens
        cached = min(usage.cached_prompt_tokens, left)
        left -= cached
        written = min(usage.cache_write_tokens, left)
        left -= written
        written_1h = min(usage.cache_write_1h_tokens, left)
        left -= written_1h
        cost = (
            left * price.input
            + cached * price.cached_input
            + written * price.cache_write
            + written_1h * price.cache_write_1h
            + usage.completion_tokens * price.output
        ) / PER_MILLION
        return round(cost, COST_DECIMALS)

    def worst_case_cost_usd(self, model: str, prompt_tokens: int, max_tokens: int,
                            cache_write: str | None = None) -> float:
        """The most a request can cost: no cache discount and every allowed output token used. With
        `cache_write` ("5m" or "1h": the request marks blocks for Anthropic's prompt cache), the whole prompt may
        be written to the cache, at that write price when it is above the input price."""
        price = self.price_for(model)
        if price is None:
            return 0.0
        rate = max(price.input, _write_rate(price, cache_write))
        return round((prompt_tokens * rate + max_tokens * price.output) / PER_MILLION, COST_DECIMALS)

    def check_priced(self, models: list[str]) -> None:
        """Under the "refuse" policy, raise InvalidRequest(code="model_not_priced") if any model is unpriced."""
        if self._unknown_policy != "refuse":
            return
        missing = [model for model in models if not self.is_priced(model)]
        if missing:
            names = ", ".join(repr(model) for model in missing)
            raise InvalidRequest(f"No price is configured for model {names}; this gateway refuses unpriced models",
                                 code="model_not_priced")


def _write_rate(price: Price, cache_write: str | None) -> float:
    if cache_write is None:
        return 0.0
    return price.cache_write_1h if cache_write == "1h" else price.cache_write


def load_price_table(settings: Settings) -> PriceTable:
    """The bundled prices with `PRICES_FILE` applied over them, and the settings' unknown-model policy."""
    default = Price(input=settings.default_input_price_per_m, output=settings.default_output_price_per_m)
    return PriceTable(_prices(settings.prices_file), unknown_policy=settings.unknown_model_pricing,
                      default_price=default)


@lru_cache
def _prices(override: Path | None) -> Mapping[str, Price]:
    """Read once per override path; a bad override file raises ValueError naming PRICES_FILE."""
    prices = _read_prices(BUNDLED_PRICES_FILE)
    if override is not None:
        try:
            overrides = _read_prices(override)
        except (OSError, yaml.YAMLError, ValueError) as exc:
            raise ValueError(f"PRICES_FILE {override}: {_reason(exc)}") from exc
        prices.update({name: _keep_max_output(price, prices.get(name)) for name, price in overrides.items()})
    return MappingProxyType(prices)


def _keep_max_output(price: Price, bundled: Price | None) -> Price:
    """A new price for a bundled model keeps the model's known maximum output unless it gives its own."""
    if price.max_output_tokens is not None or bundled is None:
        return price
    return price.model_copy(update={"max_output_tokens": bundled.max_output_tokens})


def _read_prices(path: Path) -> dict[str, Price]:
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError("must be a mapping of model name to {input, output, cached_input, cache_write, "
                         "cache_write_1h, max_output_tokens}")
    prices: dict[str, Price] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"model name {name!r} must be a non-empty string")
        try:
            prices[name] = Price.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"price of {name!r} is invalid ({problems})") from exc
    return prices


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc).replace("\n", " ")
