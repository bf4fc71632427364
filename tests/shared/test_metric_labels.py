"""The closed sets of metric label values: what a model or breaker-target label may say, and `other`."""

from pathlib import Path

from shared.config import Settings
from shared.metrics import OTHER, metric_labels
from shared.pricing import load_price_table
from shared.routing_table import RoutingTable, Target, load_routing_table


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_metric_labels_default_routing_names_priced_and_default_models_only() -> None:
    settings = _settings()
    table = load_routing_table(settings)
    labels = metric_labels(table, load_price_table(settings).models())
    assert {"gpt-4o", "gpt-5-nano", "o3-pro", "claude-sonnet-4-5", "claude-3-5-haiku"} <= labels.models
    assert "fake-model" not in labels.models  # priced, but no default route serves it
    assert labels.model("gpt-4o") == "gpt-4o"
    assert labels.model("gpt-" + "x" * 480) == OTHER and labels.model("gpt-4o-2024-08-06") == OTHER
    gpt_4o = table.targets_for("gpt-4o") or []
    assert labels.target(gpt_4o[0].target_id) == gpt_4o[0].target_id
    made_up = table.targets_for("gpt-made-up") or []
    assert made_up and labels.target(made_up[0].target_id) == OTHER


def test_metric_labels_routes_file_names_its_models_only(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("models:\n  team-fast:\n    - {provider: openai, model: gpt-4o-mini}\n")
    settings = _settings(routes_file=routes)
    labels = metric_labels(load_routing_table(settings), load_price_table(settings).models())
    assert labels.models == {"team-fast"}
    assert labels.model("gpt-4o") == OTHER  # priced, but this gateway does not route it
    assert labels.targets == {Target(provider="openai", model="gpt-4o-mini").target_id}


def test_metric_labels_empty_by_default() -> None:
    labels = metric_labels(RoutingTable({}, use_defaults=False), ["gpt-4o"])
    assert labels.models == frozenset() and labels.model("gpt-4o") == OTHER
