"""Maps a public model name to its ordered list of provider targets: from the YAML routes file when
`ROUTES_FILE` is set, else from built-in defaults. The API uses it to refuse unknown models and list
models; workers use it to pick targets. It knows nothing of SDKs or wire formats."""

import fnmatch
import hashlib
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.config import Settings
from shared.endpoint import Endpoint

__all__ = ["DEMO_MODEL", "DROP_PARAM", "Route", "RoutingTable", "Target", "load_routing_table", "parse_drop_params"]

DEMO_MODEL = "demo"
ProviderName = Literal["openai", "anthropic"]

# Default public models, and for each provider the comparable model on the other side.
OPENAI_DEFAULT_MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini", "o4-mini"]
ANTHROPIC_DEFAULT_MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
OPENAI_PATTERNS = ["gpt-*", "o1*", "o3*", "o4*"]
OPENAI_DEFAULT_ENDPOINT_MODELS = ["text-embedding-3-small", "text-embedding-3-large", "gpt-3.5-turbo-instruct"]
# OpenAI's non-chat models, served by OpenAI alone (Anthropic has neither endpoint), checked before the chat
# patterns (`gpt-3.5-turbo-instruct` is a legacy completions model).
OPENAI_ENDPOINT_PATTERNS: list[tuple[str, Endpoint]] = [
    ("text-embedding-*", Endpoint.EMBEDDINGS), ("gpt-3.5-turbo-instruct*", Endpoint.COMPLETIONS),
    ("davinci-002", Endpoint.COMPLETIONS), ("babbage-002", Endpoint.COMPLETIONS)]
ANTHROPIC_PATTERNS = ["claude-*"]
DROP_PARAM = re.compile(r"\*|[A-Za-z_][A-Za-z0-9_.]{0,63}")
"""A parameter name a route or a client may allow dropping (`seed`, `metadata.user_id`), or `*` for all."""
MAX_DROP_PARAMS = 64
PROVIDER_ENDPOINTS: dict[str, frozenset[Endpoint]] = {
    "openai": frozenset(Endpoint),
    # Anthropic's API has neither embeddings nor legacy completions.
    "anthropic": frozenset({Endpoint.CHAT, Endpoint.COUNT_TOKENS}),
}
"""What each provider's API can serve at all; a target's `endpoints` must be among them."""


def parse_drop_params(names: list[str], where: str) -> list[str]:
    """Names checked for shape only: an `extra` field may have any name, so there is no list to check
    against; a misspelt name allows nothing (the request is refused, naming the real parameter)."""
    if len(names) > MAX_DROP_PARAMS:
        raise ValueError(f"{where}: at most {MAX_DROP_PARAMS} names")
    for name in names:
        if not DROP_PARAM.fullmatch(name):
            raise ValueError(f"{where}: {name!r} is not a parameter name (letters, digits, '_', '.') or '*'")
    return sorted(set(names))


class Target(BaseModel):
    provider: ProviderName
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float | None = Field(default=None, gt=0)
    endpoints: frozenset[Endpoint] = frozenset({Endpoint.CHAT})
    """What this target serves (routes file `endpoints: [chat, completions, embeddings]`); chat only unless
    it says otherwise, since most models behind an OpenAI-compatible URL have no embeddings or completions."""

    @model_validator(mode="after")
    def _provider_serves(self) -> "Target":
        missing = self.endpoints - PROVIDER_ENDPOINTS[self.provider]
        if missing:
            names = ", ".join(sorted(missing))
            raise ValueError(f"a {self.provider} target cannot serve {names}: its API has no such endpoint")
        return self

    def serves(self, endpoint: Endpoint) -> bool:
        return endpoint in self.endpoints

    def refusal(self, endpoint: Endpoint) -> tuple[str, str] | None:
        """Why this target cannot serve `endpoint`, as (parameter, reason) for a skip or a 400; None if it can."""
        if endpoint in self.endpoints:
            return None
        return "model", f"its target {self.provider}:{self.model} does not serve {endpoint.value}"

    @property
    def target_id(self) -> str:
        """Stable id for breaker state: provider, model and endpoint (not the key)."""
        endpoint = hashlib.sha256((self.base_url or "default").encode()).hexdigest()[:8]
        return f"{self.provider}:{self.model}:{endpoint}"


class Route(BaseModel):
    """A route in its long form: its targets, and the parameters a target may drop when it cannot honour
    them (`drop_params`; `*` for any), instead of being skipped (shared/wire/capabilities.py)."""

    model_config = ConfigDict(extra="forbid")

    targets: list[Target] = Field(min_length=1)
    drop_params: list[str] = Field(default_factory=list)

    @field_validator("drop_params")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return parse_drop_params(value, "drop_params")


class RoutesFile(BaseModel):
    """Each model is a list of targets (the short form) or a `Route`."""

    models: dict[str, list[Target] | Route] = Field(min_length=1)

    def routes(self) -> dict[str, Route]:
        return {name: route if isinstance(route, Route) else Route(targets=route)
                for name, route in self.models.items()}


class RoutingTable:
    """Explicit routes first; then, if enabled, the provider-prefix defaults with cross-provider fallback."""

    def __init__(
        self,
        explicit: dict[str, list[Target]],
        *,
        drop_params: dict[str, frozenset[str]] | None = None,
        use_defaults: bool,
        openai_base_url: str | None = None,
        anthropic_base_url: str | None = None,
    ) -> None:
        self._explicit = explicit
        self._drop_params = drop_params or {}
        self._use_defaults = use_defaults
        self._openai_base_url = openai_base_url
        self._anthropic_base_url = anthropic_base_url

    def targets_for(self, model: str) -> list[Target] | None:
        if model in self._explicit:
            return self._explicit[model]
        if not self._use_defaults:
            return None
        for pattern, endpoint in OPENAI_ENDPOINT_PATTERNS:
            if fnmatch.fnmatchcase(model, pattern):
                return [self._openai(model).model_copy(update={"endpoints": frozenset({endpoint})})]
        if any(fnmatch.fnmatchcase(model, p) for p in OPENAI_PATTERNS):
            fallback = "claude-haiku-4-5" if "mini" in model or "nano" in model else "claude-sonnet-4-5"
            return [self._openai(model), self._anthropic(fallback)]
        if any(fnmatch.fnmatchcase(model, p) for p in ANTHROPIC_PATTERNS):
            fallback = "gpt-4o-mini" if "haiku" in model else "gpt-4o"
            return [self._anthropic(model), self._openai(fallback)]
        return None

    def drop_params_for(self, model: str) -> frozenset[str]:
        """The parameters the operator allows a target of this model's route to drop (routes file only)."""
        return self._drop_params.get(model, frozenset())

    def providers(self) -> set[str]:
        """The providers some route may call (the worker builds adapters for these only)."""
        used: set[str] = {target.provider for targets in self._explicit.values() for target in targets}
        return used | {"openai", "anthropic"} if self._use_defaults else used

    def public_models(self) -> list[str]:
        names = list(self._explicit)
        if self._use_defaults:
            defaults = OPENAI_DEFAULT_MODELS + ANTHROPIC_DEFAULT_MODELS + OPENAI_DEFAULT_ENDPOINT_MODELS
            names += [m for m in defaults if m not in names]
        return names

    def _openai(self, model: str) -> Target:
        return Target(provider="openai", model=model, base_url=self._openai_base_url)

    def _anthropic(self, model: str) -> Target:
        return Target(provider="anthropic", model=model, base_url=self._anthropic_base_url)


def load_routing_table(settings: Settings) -> RoutingTable:
    """Build the table; a broken routes file raises ValueError naming ROUTES_FILE and the problem."""
    explicit: dict[str, list[Target]] = {}
    drop_params: dict[str, frozenset[str]] = {}
    use_defaults = True
    if settings.routes_file is not None:
        routes = _read_routes_file(settings.routes_file)
        explicit = {name: route.targets for name, route in routes.items()}
        drop_params = {name: frozenset(route.drop_params) for name, route in routes.items() if route.drop_params}
        use_defaults = False
    elif settings.fake_provider_url:
        # A fake upstream is configured (the embedded mode sets one when no provider key is): a demo model.
        # The fake provider also answers embeddings and legacy completions, so the demo model serves all three.
        explicit[DEMO_MODEL] = [
            Target(provider="openai", model="fake-model", base_url=f"{settings.fake_provider_url}/v1",
                   endpoints=frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS, Endpoint.COMPLETIONS}))
        ]
    return RoutingTable(
        explicit,
        drop_params=drop_params,
        use_defaults=use_defaults,
        openai_base_url=settings.openai_base_url,
        anthropic_base_url=settings.anthropic_base_url,
    )


def _read_routes_file(path: Path) -> dict[str, Route]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"ROUTES_FILE {path}: cannot read: {exc}") from exc
    try:
        return RoutesFile.model_validate(raw).routes()
    except ValidationError as exc:
        raise ValueError(f"ROUTES_FILE {path}: invalid: {exc}") from exc
