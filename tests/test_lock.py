"""constraints.txt (written by scripts/lock.sh) against pyproject.toml: every dependency the gateway and its
tests declare is pinned, at a version the declaration allows, and the file is a plain pip constraints file
that works on any machine: exact pins only, no extras or hashes, no index URL, find-links or local path.
README's run command and scripts/test.sh install with it."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"

# Anything in the lock, comments included, that names a place: a URL, an absolute or home path, an option
# that points pip somewhere (pip-compile copies the machine's pip configuration unless told not to).
LOCAL_REFERENCE = re.compile(r"[a-z][a-z0-9+.-]*://|(^|[\s=])[/~]|--(extra-)?index-url|--find-links|(^|\s)-[fie]\s")


def declared() -> list[Requirement]:
    """The runtime dependencies and the test extra of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]]


def pins(text: str) -> dict[str, Version]:
    """name -> version of every `name==version` line; any other requirement line is an error."""
    found: dict[str, Version] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise AssertionError(f"constraints.txt: not a requirement: {line!r}") from exc
        specifiers = list(requirement.specifier)
        if requirement.extras or requirement.url or len(specifiers) != 1 or specifiers[0].operator != "==":
            raise AssertionError(f"constraints.txt: not an exact pin without extras: {line!r}")
        found[canonicalize_name(requirement.name)] = Version(specifiers[0].version)
    return found


def local_references(text: str) -> list[str]:
    return [line for line in text.splitlines() if LOCAL_REFERENCE.search(line)]


def test_lock_pins_every_declared_dependency_within_its_range() -> None:
    locked = pins(CONSTRAINTS.read_text())
    problems = []
    for requirement in declared():
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name}: not pinned")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}: pinned {version}, pyproject.toml wants {requirement.specifier}")
    assert not problems, "run ./scripts/lock.sh:\n" + "\n".join(problems)


def test_lock_pins_pip_and_setuptools() -> None:
    # The Dockerfile installs these two from the lock before anything else (pip-compile --allow-unsafe).
    assert {"pip", "setuptools"} <= pins(CONSTRAINTS.read_text()).keys()


def test_lock_names_no_machine_local_path_or_index() -> None:
    text = CONSTRAINTS.read_text()
    assert not local_references(text), f"constraints.txt names local places: {local_references(text)}"
    assert "--hash" not in text, "constraints.txt has hashes: pip would then demand them of every install"


def test_readme_and_test_script_install_from_the_lock() -> None:
    for name in ("README.md", "scripts/test.sh"):
        installs = [line for line in (ROOT / name).read_text().splitlines() if re.search(r"pip install .*-e ", line)]
        assert installs, f"{name}: no pip install of the project"
        unlocked = [line for line in installs if "-c constraints.txt" not in line]
        assert not unlocked, f"{name} installs without the lock: {unlocked}"


def test_checks_catch_mistakes() -> None:
    assert pins("# comment\nfoo-bar==1.2  # via x\n    # via\n") == {"foo-bar": Version("1.2")}
    for bad in ("foo>=1", "foo[extra]==1", "foo==1,<2", "--find-links /opt/wheels"):
        with pytest.raises(AssertionError):
            pins(bad)
    assert local_references(
        "--extra-index-url file:///opt/pypi/simple\n-f /opt/wheels\n    # via -c /etc/xdg/pip/constraints.txt\n"
        "foo @ https://example.com/foo.whl\n--index-url https://pypi.org/simple\n-i https://pypi.org/simple\n"
    ) == [
        "--extra-index-url file:///opt/pypi/simple", "-f /opt/wheels", "    # via -c /etc/xdg/pip/constraints.txt",
        "foo @ https://example.com/foo.whl", "--index-url https://pypi.org/simple", "-i https://pypi.org/simple",
    ]
    assert local_references("#    ./scripts/lock.sh\nfoo==1\n    #   llm-gateway (pyproject.toml)\n") == []
