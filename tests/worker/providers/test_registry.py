"""The provider registry builds adapters only for the providers the routing table uses, so a worker whose
routes never reach Anthropic does not pay for the anthropic SDK's import."""

import subprocess
import sys

from shared.config import Settings
from shared.routing_table import RoutingTable, Target
from worker.providers import build_providers


def _table(*providers: str, defaults: bool = False) -> RoutingTable:
    explicit = {f"m-{p}": [Target(provider=p, model="x")] for p in providers}  # type: ignore[arg-type]
    return RoutingTable(explicit, use_defaults=defaults)


def test_registry_routing_table_names_only_the_providers_its_routes_use() -> None:
    assert _table("openai").providers() == {"openai"}
    assert _table("anthropic", "openai").providers() == {"anthropic", "openai"}
    assert _table(defaults=True).providers() == {"anthropic", "openai"}


def test_registry_builds_the_named_providers_only() -> None:
    providers = build_providers(Settings(), lambda _: None, {"openai"})
    assert list(providers) == ["openai"]
    assert set(build_providers(Settings(), lambda _: None)) == {"anthropic", "openai"}


def test_registry_openai_only_worker_never_imports_the_anthropic_sdk() -> None:
    code = ("import sys; from shared.config import Settings; from worker.providers import build_providers; "
            "build_providers(Settings(), lambda _: None, {'openai'}); print('anthropic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"
