"""Provider registry: `build_providers` gives the adapters the worker routes through, by provider name.
Adding a provider takes one adapter module and one line here."""

from collections.abc import Callable, Mapping

from shared.config import Settings
from worker.providers.anthropic import AnthropicProvider
from worker.providers.base import Provider
from worker.providers.openai import OpenAIProvider

__all__ = ["aclose_providers", "build_providers"]

ApiKeyLookup = Callable[[str], str | None]


def build_providers(settings: Settings, api_key_lookup: ApiKeyLookup) -> dict[str, Provider]:
    """One adapter per provider, with the settings' keys and base URLs as defaults. `api_key_lookup`
    resolves a target's `api_key_env` (the name of an environment variable) to its value."""
    providers: list[Provider] = [
        OpenAIProvider(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout_s=settings.upstream_timeout_s,
            api_key_lookup=api_key_lookup,
        ),
        AnthropicProvider(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,
            timeout_s=settings.upstream_timeout_s,
            api_key_lookup=api_key_lookup,
        ),
    ]
    return {provider.name: provider for provider in providers}


async def aclose_providers(providers: Mapping[str, Provider]) -> None:
    """Close every adapter's SDK clients."""
    for provider in providers.values():
        await provider.aclose()
