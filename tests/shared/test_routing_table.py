"""The routing table: a routes file maps public names to ordered targets; without one, provider-prefix
defaults with cross-provider fallback apply; a broken file is refused with a message naming it."""

from pathlib import Path

import pytest

from shared.config import Settings
from shared.endpoint import Endpoint
from shared.routing_table import DEMO_MODEL, load_routing_table


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_routing_table_reads_routes_file(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "models:\n  gpt-4o:\n    - {provider: openai, model: gpt-4o}\n"
        "    - {provider: anthropic, model: claude-sonnet-4-5, timeout_s: 5, api_key_env: MY_KEY}\n"
        "  local-fast:\n    - {provider: openai, model: fake-model, base_url: 'http://127.0.0.1:18000/v1'}\n"
    )
    table = load_routing_table(_settings(routes_file=routes))
    targets = table.targets_for("gpt-4o")
    assert targets is not None and [t.provider for t in targets] == ["openai", "anthropic"]
    assert targets[1].timeout_s == 5 and targets[1].api_key_env == "MY_KEY"
    assert table.targets_for("gpt-4o-mini") is None  # with a routes file, only its models exist
    assert table.public_models() == ["gpt-4o", "local-fast"]


@pytest.mark.parametrize(
    "content",
    ["models: {}", "models:\n  m:\n    - {provider: cohere, model: x}", "models:\n  m:\n    - {provider: openai}",
     "not: [valid", "models:\n  m:\n    - {provider: openai, model: x, timeout_s: -1}"],
)
def test_routing_table_refuses_invalid_routes_file(tmp_path: Path, content: str) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(content)
    with pytest.raises(ValueError, match="ROUTES_FILE"):
        load_routing_table(_settings(routes_file=routes))


def test_routing_table_refuses_missing_routes_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ROUTES_FILE"):
        load_routing_table(_settings(routes_file=tmp_path / "absent.yaml"))


@pytest.mark.parametrize(
    ("model", "first", "fallback"),
    [("gpt-4o", "openai", "claude-sonnet-4-5"), ("gpt-4o-mini", "openai", "claude-haiku-4-5"),
     ("o3-mini", "openai", "claude-haiku-4-5"), ("o1", "openai", "claude-sonnet-4-5"),
     ("claude-sonnet-4-5", "anthropic", "gpt-4o"), ("claude-haiku-4-5", "anthropic", "gpt-4o-mini")],
)
def test_routing_table_defaults_fall_back_across_providers(model: str, first: str, fallback: str) -> None:
    table = load_routing_table(_settings(openai_api_key="sk-1", anthropic_api_key="sk-2"))
    targets = table.targets_for(model)
    assert targets is not None
    assert targets[0].provider == first and targets[0].model == model
    assert targets[1].model == fallback


def test_routing_table_defaults_refuse_unknown_model() -> None:
    table = load_routing_table(_settings(openai_api_key="sk-1"))
    assert table.targets_for("llama-3") is None


def test_routing_table_defaults_use_provider_base_urls() -> None:
    table = load_routing_table(_settings(openai_api_key="k", openai_base_url="http://proxy.local/v1"))
    targets = table.targets_for("gpt-4o")
    assert targets is not None and targets[0].base_url == "http://proxy.local/v1"


def test_routing_table_offers_demo_model_without_provider_keys() -> None:
    table = load_routing_table(_settings(fake_provider_url="http://127.0.0.1:9/fake"))
    targets = table.targets_for(DEMO_MODEL)
    assert targets is not None and targets[0].base_url == "http://127.0.0.1:9/fake/v1"
    assert DEMO_MODEL in table.public_models()


def test_routing_table_target_ids_differ_by_endpoint() -> None:
    table = load_routing_table(_settings(openai_api_key="k"))
    default = table.targets_for("gpt-4o")
    other = load_routing_table(_settings(openai_api_key="k", openai_base_url="http://b/v1")).targets_for("gpt-4o")
    assert default is not None and other is not None
    assert default[0].target_id != other[0].target_id


def test_routes_file_drop_params_in_the_long_form(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "models:\n  smart:\n    drop_params: [seed, logit_bias, seed]\n    targets:\n"
        "      - {provider: anthropic, model: claude-sonnet-4-5}\n      - {provider: openai, model: gpt-4o}\n"
        "  any:\n    drop_params: ['*']\n    targets: [{provider: openai, model: gpt-4o}]\n"
        "  short:\n    - {provider: openai, model: gpt-4o}\n"
    )
    table = load_routing_table(_settings(routes_file=routes))
    assert table.drop_params_for("smart") == {"seed", "logit_bias"}
    assert table.drop_params_for("any") == {"*"}
    assert table.drop_params_for("short") == frozenset() and table.drop_params_for("unrouted") == frozenset()
    assert [t.provider for t in table.targets_for("smart") or []] == ["anthropic", "openai"]


@pytest.mark.parametrize("content", [
    "models:\n  m:\n    drop_params: ['se ed']\n    targets: [{provider: openai, model: x}]",
    "models:\n  m:\n    drop_params: [seed]\n    targets: []",
    "models:\n  m:\n    drop_parms: [seed]\n    targets: [{provider: openai, model: x}]",
])
def test_routes_file_refuses_bad_drop_params(tmp_path: Path, content: str) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(content)
    with pytest.raises(ValueError, match="ROUTES_FILE"):
        load_routing_table(_settings(routes_file=routes))


def test_routing_table_defaults_route_openai_embeddings_and_instruct_models_to_openai_alone() -> None:
    table = load_routing_table(_settings(openai_api_key="k"))
    embedding = table.targets_for("text-embedding-3-small")
    instruct = table.targets_for("gpt-3.5-turbo-instruct")
    assert embedding is not None and [(t.provider, t.endpoints) for t in embedding] == [
        ("openai", frozenset({Endpoint.EMBEDDINGS}))]
    assert instruct is not None and [(t.provider, t.endpoints) for t in instruct] == [
        ("openai", frozenset({Endpoint.COMPLETIONS}))]
    chat = table.targets_for("gpt-4o")  # the chat pattern still routes with its Anthropic fallback
    assert chat is not None and [t.provider for t in chat] == ["openai", "anthropic"]
    assert {"text-embedding-3-small", "gpt-3.5-turbo-instruct"} <= set(table.public_models())


def test_routing_table_demo_model_serves_chat_embeddings_and_completions() -> None:
    table = load_routing_table(_settings(fake_provider_url="http://127.0.0.1:9/fake"))
    targets = table.targets_for(DEMO_MODEL)
    assert targets is not None
    assert all(targets[0].serves(e) for e in (Endpoint.CHAT, Endpoint.EMBEDDINGS, Endpoint.COMPLETIONS))
