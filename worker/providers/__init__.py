"""Provider registry: `build_providers` gives the adapters the worker routes through, by provider name.
Adding a provider takes one adapter module and one line in `ADAPTERS`. Adapters are imported only for the
providers the routing table uses: each SDK's types cost tens of MiB of worker memory (anthropic ~40 MiB)."""

import importlib
from collections.abc import Callable, Iterable, Mapping

from shared.config import Settings
from worker.providers.base import Provider

__all__ = ["ADAPTERS", "aclose_providers", "build_providers"]

ApiKeyLookup = Callable[[str], str | None]

# provider name -> (module, class, the settings' default key and base URL attributes)
ADAPTERS: dict[str, tuple[str, str, str, str]] = {
    "openai": ("worker.providers.openai", "OpenAIProvider", "openai_api_key", "openai_base_url"),
    "anthropic": ("worker.providers.anthropic", "AnthropicProvider", "anthropic_api_key", "anthropic_base_url"),
}


def build_providers(settings: Settings, api_key_lookup: ApiKeyLookup,
                    names: Iterable[str] | None = None) -> dict[str, Provider]:
    """One adapter per provider in `names` (default: all), with the settings' keys and base URLs as defaults.
    `api_key_lookup` resolves a target's `api_key_env` (the name of an environment variable) to its value."""
    providers: dict[str, Provider] = {}
    for name in sorted(ADAPTERS if names is None else set(names)):
        module_name, class_name, key_attr, url_attr = ADAPTERS[name]
        adapter = getattr(importlib.import_module(module_name), class_name)
        providers[name] = adapter(api_key=getattr(settings, key_attr), base_url=getattr(settings, url_attr),
                                  timeout_s=settings.upstream_timeout_s, api_key_lookup=api_key_lookup)
    return providers


async def aclose_providers(providers: Mapping[str, Provider]) -> None:
    """Close every adapter's SDK clients."""
    for provider in providers.values():
        await provider.aclose()
