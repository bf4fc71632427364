"""Maps a public model name to its ordered list of provider targets: from the YAML routes file when
`ROUTES_FILE` is set, else from built-in defaults. The API uses it to refuse unknown models and list
models; workers use it to pick targets. It knows nothing of SDKs or wire formats."""

import fnmatch
import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from shared.config import Settings

__all__ = ["DEMO_MODEL", "RoutingTable", "Target", "load_routing_table"]

DEMO_MODEL = "demo"
ProviderName = Literal["openai", "anthropic"]

# Default public models, and for each provider the comparable model on the other side.
OPENAI_DEFAULT_MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini", "o4-mini"]
ANTHROPIC_DEFAULT_MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
OPENAI_PATTERNS = ["gpt-*", "o1*", "o3*", "o4*"]
ANTHROPIC_PATTERNS = ["claude-*"]


class Target(BaseModel):
    provider: ProviderName
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float | None = Field(default=None, gt=0)

    @property
    def target_id(self) -> str:
        """Stable id for breaker state: provider, model and endpoint (not the key)."""
        endpoint = hashlib.sha256((self.base_url or "default").encode()).hexdigest()[:8]
        return f"{self.provider}:{self.model}:{endpoint}"


class RoutesFile(BaseModel):
    models: dict[str, list[Target]] = Field(min_length=1)


class RoutingTable:
    """Explicit routes first; then, if enabled, the provider-prefix defaults with cross-provider fallback."""

    def __init__(
        self,
        explicit: dict[str, list[Target]],
        *,
        use_defaults: bool,
        openai_base_url: str | None = None,
        anthropic_base_url: str | None = None,
    ) -> None:
        self._explicit = explicit
        self._use_defaults = use_defaults
        self._openai_base_url = openai_base_url
        self._anthropic_base_url = anthropic_base_url

    def targets_for(self, model: str) -> list[Target] | None:
        if model in self._explicit:
            return self._explicit[model]
        if not self._use_defaults:
            return None
        if any(fnmatch.fnmatchcase(model, p) for p in OPENAI_PATTERNS):
            fallback = "claude-haiku-4-5" if "mini" in model or "nano" in model else "claude-sonnet-4-5"
            return [self._openai(model), self._anthropic(fallback)]
        if any(fnmatch.fnmatchcase(model, p) for p in ANTHROPIC_PATTERNS):
            fallback = "gpt-4o-mini" if "haiku" in model else "gpt-4o"
            return [self._anthropic(model), self._openai(fallback)]
        return None

    def providers(self) -> set[str]:
        """The providers some route may call (the worker builds adapters for these only)."""
        used = {target.provider for targets in self._explicit.values() for target in targets}
        return used | {"openai", "anthropic"} if self._use_defaults else used

    def public_models(self) -> list[str]:
        names = list(self._explicit)
        if self._use_defaults:
            names += [m for m in OPENAI_DEFAULT_MODELS + ANTHROPIC_DEFAULT_MODELS if m not in names]
        return names

    def _openai(self, model: str) -> Target:
        return Target(provider="openai", model=model, base_url=self._openai_base_url)

    def _anthropic(self, model: str) -> Target:
        return Target(provider="anthropic", model=model, base_url=self._anthropic_base_url)


def load_routing_table(settings: Settings) -> RoutingTable:
    """Build the table; a broken routes file raises ValueError naming ROUTES_FILE and the problem."""
    explicit: dict[str, list[Target]] = {}
    use_defaults = True
    if settings.routes_file is not None:
        explicit = _read_routes_file(settings.routes_file)
        use_defaults = False
    elif settings.fake_provider_url:
        # A fake upstream is configured (the embedded mode sets one when no provider key is): a demo model.
        explicit[DEMO_MODEL] = [
            Target(provider="openai", model="fake-model", base_url=f"{settings.fake_provider_url}/v1")
        ]
    return RoutingTable(
        explicit,
        use_defaults=use_defaults,
        openai_base_url=settings.openai_base_url,
        anthropic_base_url=settings.anthropic_base_url,
    )


def _read_routes_file(path: Path) -> dict[str, list[Target]]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"ROUTES_FILE {path}: cannot read: {exc}") from exc
    try:
        return RoutesFile.model_validate(raw).models
    except ValidationError as exc:
        raise ValueError(f"ROUTES_FILE {path}: invalid: {exc}") from exc
