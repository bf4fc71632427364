"""Shared by the deployment-file tests: the repository paths, the settings the files must agree with, the
linters installed by the `test` extra, and the Kubernetes manifests loaded once per run."""

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"

GATEWAY_UID = 10001
SETTINGS = {name.upper() for name in Settings.model_fields}
DRAIN_S = Settings.model_fields["worker_drain_s"].default
WORKER_METRICS_PORT = Settings.model_fields["worker_metrics_port"].default
API_METRICS_PORT = Settings.model_fields["api_metrics_port"].default
# Manifests kustomization.yaml must not apply: placeholders, and a rule for the monitoring stack.
K8S_TEMPLATES = {"secret.example.yaml", "prometheus-adapter.yaml"}


def tool(name: str) -> str:
    """A linter installed by the `test` extra next to this interpreter (never skipped: missing is a failure)."""
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert path, f"{name} is missing: install the test extra (pip install -e '.[test]')"
    return path


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def documents(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc)


@functools.cache
def all_documents() -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in manifest_files() for doc in documents(path.name))


def find(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in all_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]

