"""The layout rules the codebase keeps: imports point from api/ and worker/ to shared/ only; only provider
adapters touch the SDKs; files stay small; every module says what it is for."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "worker", "shared", "cli")
MAX_LINES = 400


def _modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (REPO / package).rglob("*.py")
                  if "migrations" not in p.parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize(("package", "forbidden"), [("api", {"worker", "cli"}), ("worker", {"api", "cli"}),
                                                    ("shared", {"api", "worker", "cli"})])
def test_architecture_imports_point_to_shared_only(package: str, forbidden: set[str]) -> None:
    offenders = {str(p.relative_to(REPO)): sorted(n for n in _imports(p) if _top(n) in forbidden)
                 for p in _modules(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_architecture_only_provider_adapters_import_sdks() -> None:
    offenders = [str(p.relative_to(REPO)) for p in _modules(*PACKAGES)
                 if {_top(n) for n in _imports(p)} & {"openai", "anthropic"}
                 and p.parent != REPO / "worker" / "providers"]
    assert offenders == []


def test_architecture_api_and_worker_never_import_fake_provider() -> None:
    offenders = [str(p.relative_to(REPO)) for p in _modules("api", "worker")
                 if any(n.startswith("shared.fake_provider") for n in _imports(p))]
    assert offenders == []


def test_architecture_files_stay_under_line_cap() -> None:
    big = {str(p.relative_to(REPO)): n for p in _modules(*PACKAGES)
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def test_architecture_every_module_has_a_docstring() -> None:
    missing = [str(p.relative_to(REPO)) for p in _modules(*PACKAGES)
               if p.read_text().strip() and ast.get_docstring(ast.parse(p.read_text())) is None
               and p.name != "__init__.py"]
    assert missing == []


def test_architecture_only_config_reads_environment() -> None:
    offenders = [str(p.relative_to(REPO)) for p in _modules(*PACKAGES)
                 if ("os.environ" in p.read_text() or "os.getenv" in p.read_text())
                 and p != REPO / "shared" / "config.py"]
    assert offenders == []


def test_architecture_redis_keys_are_built_in_keys_module() -> None:
    offenders = [str(p.relative_to(REPO)) for p in _modules("api", "worker", "shared")
                 if '"gw:' in p.read_text() and p.name not in ("keys.py", "config.py")]
    assert offenders == []
