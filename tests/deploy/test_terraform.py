"""The Terraform module in terraform/, parsed by python-hcl2: its files, provider, variables, and the
manifests it reads and rewrites. Nothing here runs Terraform."""

import functools
import re
from typing import Any

import hcl2

from tests.deploy.support import K8S, K8S_TEMPLATES, ROOT, documents, find, manifest_files

TERRAFORM = ROOT / "terraform"


@functools.cache
def terraform() -> dict[str, dict[str, Any]]:
    return {path.name: hcl2.loads(path.read_text()) for path in sorted(TERRAFORM.glob("*.tf"))}


def unquote(value: object) -> object:
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def test_terraform_module_files_parse() -> None:
    assert set(terraform()) == {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}
    assert (TERRAFORM / "README.md").is_file()


def test_terraform_requires_the_kubernetes_provider() -> None:
    block = terraform()["versions.tf"]["terraform"][0]
    providers = {name: spec for entry in block["required_providers"] for name, spec in entry.items()
                 if not name.startswith("__")}
    assert unquote(providers["kubernetes"]["source"]) == "hashicorp/kubernetes"
    assert unquote(providers["kubernetes"]["version"])
    assert unquote(block["required_version"]).startswith(">=")
    provider = terraform()["main.tf"]["provider"][0]
    assert "kubernetes" in {unquote(name) for name in provider}


def declared_variables() -> dict[str, dict[str, Any]]:
    return {unquote(name): body for entry in terraform()["variables.tf"]["variable"] for name, body in entry.items()}


def test_terraform_variables_used_are_declared_and_declared_are_used() -> None:
    text = "\n".join((TERRAFORM / name).read_text() for name in ("main.tf", "outputs.tf"))
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))
    declared = set(declared_variables())
    assert used - declared == set(), "used but not declared"
    assert declared - used == set(), "declared but never used"
    assert {"namespace", "image", "api_replicas", "kubeconfig_path", "secret_key", "admin_api_key"} <= declared


def test_terraform_secrets_are_sensitive() -> None:
    variables = declared_variables()
    for name in ("secret_key", "admin_api_key", "openai_api_key", "anthropic_api_key", "database_url",
                 "redis_url", "postgres_password"):
        assert variables[name].get("sensitive") is True, name


def test_terraform_reads_manifests_that_exist_and_rewrites_strings_they_contain() -> None:
    main = (TERRAFORM / "main.tf").read_text()
    files = set(re.findall(r'[/"]([a-z0-9.-]+\.yaml)"', main))
    assert files, "main.tf names no manifest"
    for name in files:
        assert (K8S / name).is_file(), f"main.tf reads k8s/{name}, which does not exist"
    assert files >= {p.name for p in manifest_files()} - K8S_TEMPLATES - {"namespace.yaml"}
    image = re.search(r'manifest_image\s*=\s*"([^"]+)"', main)
    namespace = re.search(r'manifest_namespace\s*=\s*"([^"]+)"', main)
    assert image and namespace
    for name in ("api.yaml", "worker.yaml", "migrate-job.yaml"):
        assert (K8S / name).read_text().count(image.group(1)) == 1, f"{name}: {image.group(1)!r}"
    for name in files - {"namespace.yaml", "secret.example.yaml"}:
        text = (K8S / name).read_text()
        assert text.count(namespace.group(1)) == len(documents(name)), f"{name}: one namespace per document"
    for key in ("Deployment/llm-gateway-api", "HorizontalPodAutoscaler/llm-gateway-worker"):
        kind, name = key.split("/")
        find(kind, name)
        assert f'"{key}"' in main
