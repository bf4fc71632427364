"""terraform/terraform.tfvars.example, parsed by python-hcl2, against terraform/variables.tf: what it sets is
declared, every variable without a default is set (so a copy needs only its values edited), every other
variable is at least shown (set, or commented out as `# name = ...`), and secrets hold only placeholders."""

import re
from typing import Any

import hcl2

from tests.support.processes import REPO

TERRAFORM = REPO / "terraform"
EXAMPLE = TERRAFORM / "terraform.tfvars.example"
PLACEHOLDERS = {"change-me", ""}
COMMENTED_ASSIGNMENT = re.compile(r"^([a-z_][a-z0-9_]*)\s*=")


def unquote(value: object) -> object:
    """python-hcl2 keeps the quotes of a string literal."""
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def declared() -> dict[str, dict[str, Any]]:
    blocks = hcl2.loads((TERRAFORM / "variables.tf").read_text())["variable"]
    return {unquote(name): body for block in blocks for name, body in block.items() if not name.startswith("__")}


def assignments(text: str) -> tuple[dict[str, object], set[str]]:
    """(variables set, names of the variables shown in commented-out assignments) of a tfvars file."""
    parsed = hcl2.loads(text)
    values = {name: unquote(value) for name, value in parsed.items() if not name.startswith("__")}
    commented = {match.group(1) for comment in parsed.get("__comments__", [])
                 if (match := COMMENTED_ASSIGNMENT.match(comment["value"].strip()))}
    return values, commented


def test_example_sets_only_declared_variables() -> None:
    values, commented = assignments(EXAMPLE.read_text())
    assert not values.keys() - declared().keys(), "set but not declared in variables.tf"
    assert not commented - declared().keys(), "commented out but not declared in variables.tf"


def test_example_sets_every_variable_without_a_default() -> None:
    required = {name for name, body in declared().items() if "default" not in body}
    values, _ = assignments(EXAMPLE.read_text())
    assert required, "variables.tf should have required variables (image, secret_key, admin_api_key)"
    assert not required - values.keys(), "required variables missing from the example"


def test_example_shows_every_variable() -> None:
    values, commented = assignments(EXAMPLE.read_text())
    assert not declared().keys() - values.keys() - commented, "variables neither set nor shown commented out"


def test_example_secrets_are_placeholders() -> None:
    values, _ = assignments(EXAMPLE.read_text())
    sensitive = {name for name, body in declared().items() if body.get("sensitive") is True}
    real = {name: values[name] for name in sensitive & values.keys() if values[name] not in PLACEHOLDERS}
    assert not real, "secrets in the example must be placeholders"


def test_terraform_readme_gives_the_commands() -> None:
    text = (TERRAFORM / "README.md").read_text()
    assert "cp terraform.tfvars.example terraform.tfvars && terraform init && terraform plan && terraform apply" in text


def test_parsers_catch_mistakes() -> None:
    values, commented = assignments('a = "x"\nb = 2\n# c = "y"\n# a comment = not an assignment\n')
    assert values == {"a": "x", "b": 2}
    assert commented == {"c"}
