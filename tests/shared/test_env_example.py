""".env.example and docs/CONFIGURATION.md against `Settings`: every setting is in both, nothing else is, each
.env.example variable has its comment and a value `Settings` accepts, and the documented defaults are the
real ones."""

import re
from pathlib import Path

import pytest

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
CONFIG_DOC = ROOT / "docs" / "CONFIGURATION.md"

# `NAME=value`, active or commented out (`# NAME=value`). Prose comments never start with `NAME=`.
ASSIGNMENT = re.compile(r"^(?:#\s?)?([A-Z][A-Z0-9_]*)=(.*)$")
# A settings-table row: | `NAME` | default | meaning |
TABLE_ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|([^|]*)\|(.*)\|\s*$")

SETTINGS = {name.upper() for name in Settings.model_fields}


def env_assignments(text: str) -> list[tuple[int, str, str]]:
    """(line index, NAME, value) of every assignment in an env file, commented out or not."""
    found = []
    for index, line in enumerate(text.splitlines()):
        match = ASSIGNMENT.match(line)
        if match:
            found.append((index, match.group(1), match.group(2)))
    return found


def doc_rows(text: str) -> dict[str, tuple[str, str]]:
    """NAME -> (default cell, meaning cell) of every table row whose first cell is a backticked NAME."""
    rows: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        match = TABLE_ROW.match(line)
        if match:
            name = match.group(1)
            if name in rows:
                raise AssertionError(f"docs/CONFIGURATION.md has two rows for {name}")
            rows[name] = (match.group(2).strip(), match.group(3).strip())
    return rows


def documented_default(value: object) -> str:
    """How the table writes a default: unset (None), empty ("") or the value in backticks."""
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    return f"`{value}`"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def test_env_example_lists_every_setting() -> None:
    names = {name for _, name, _ in env_assignments(ENV_EXAMPLE.read_text())}
    missing = sorted(SETTINGS - names)
    assert not missing, f"Settings fields missing from .env.example: {missing}"


def test_env_example_has_only_settings_each_once() -> None:
    names = [name for _, name, _ in env_assignments(ENV_EXAMPLE.read_text())]
    unknown = sorted(set(names) - SETTINGS)
    assert not unknown, f".env.example variables that are not Settings fields: {unknown}"
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f".env.example sets these more than once: {repeated}"


def test_env_example_comments_every_variable() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    uncommented = []
    for index, name, _ in env_assignments(ENV_EXAMPLE.read_text()):
        previous = lines[index - 1] if index > 0 else ""
        if not previous.startswith("# ") or ASSIGNMENT.match(previous):
            uncommented.append(name)
    assert not uncommented, f".env.example variables without a comment line above them: {uncommented}"


def test_env_example_values_are_valid_settings(clean_env: None) -> None:
    values = {name.lower(): value for _, name, value in env_assignments(ENV_EXAMPLE.read_text())}
    # Every example at once, commented out or not: each must be a value Settings accepts.
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    assert settings.environment in ("development", "production", "test")
    # The active lines alone, as a copied `.env`, must start a development gateway.
    Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]


def test_configuration_doc_lists_every_setting() -> None:
    rows = doc_rows(CONFIG_DOC.read_text())
    missing = sorted(SETTINGS - rows.keys())
    assert not missing, f"Settings fields missing from the table in docs/CONFIGURATION.md: {missing}"


def test_configuration_doc_lists_only_settings_with_their_real_defaults() -> None:
    rows = doc_rows(CONFIG_DOC.read_text())
    unknown = sorted(rows.keys() - SETTINGS)
    assert not unknown, f"docs/CONFIGURATION.md rows for variables that are not Settings fields: {unknown}"
    wrong = []
    for name, field in Settings.model_fields.items():
        default, meaning = rows.get(name.upper(), ("", ""))
        if name.upper() in rows and default != documented_default(field.default):
            wrong.append(f"{name.upper()}: documented {default!r}, real {documented_default(field.default)!r}")
        if name.upper() in rows and not meaning:
            wrong.append(f"{name.upper()}: no meaning given")
    assert not wrong, "docs/CONFIGURATION.md settings table is out of date:\n" + "\n".join(wrong)


def test_parsers_catch_mistakes() -> None:
    text = "# a comment with NAME=value inside\n# REDIS_PORT=6379\nSECRET_KEY=x\nNOT_A_SETTING=1\n"
    assert [(n, v) for _, n, v in env_assignments(text)] == [
        ("REDIS_PORT", "6379"),
        ("SECRET_KEY", "x"),
        ("NOT_A_SETTING", "1"),
    ]
    table = "| Variable | Default | Meaning |\n|---|---|---|\n| `REDIS_PORT` | `6379` | Port. |\n"
    assert doc_rows(table) == {"REDIS_PORT": ("`6379`", "Port.")}
    assert documented_default(None) == "unset"
    assert documented_default("") == "empty"
    assert documented_default(Path("llm_gateway.db")) == "`llm_gateway.db`"
    with pytest.raises(AssertionError, match="two rows"):
        doc_rows(table + "| `REDIS_PORT` | `1` | Again. |\n")
