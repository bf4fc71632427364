"""The Dockerfile, checked offline: its build stages and final image, hadolint, the build context that
.dockerignore sends, and the wheel the image installs. Nothing here needs Docker."""

import fnmatch
import functools
import os
import re
import subprocess
import tomllib
from pathlib import PurePosixPath

from tests.deploy.support import API_METRICS_PORT, GATEWAY_UID, ROOT, WORKER_METRICS_PORT, tool

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, backslash continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, args = pending.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


@functools.cache
def docker_stages() -> list[list[tuple[str, str]]]:
    """The build stages, each starting with its FROM."""
    stages: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def global_args() -> dict[str, str]:
    args = {}
    for keyword, rest in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def instruction_args(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for key, rest in stage if key == keyword]


def test_dockerfile_is_multi_stage_with_a_python_311_slim_runtime() -> None:
    stages = docker_stages()
    assert len(stages) >= 2
    base = stages[-1][0][1].split()[0]
    for name, value in global_args().items():
        base = base.replace(f"${{{name}}}", value)
    assert base == "python:3.11-slim"
    builder = stages[0][0][1].split()
    assert builder[-2:] == ["AS", "builder"]


def test_dockerfile_runtime_copies_only_the_venv_and_the_entrypoint() -> None:
    runtime = docker_stages()[-1]
    copies = instruction_args(runtime, "COPY")
    assert "--from=builder /opt/venv /opt/venv" in copies
    others = [c for c in copies if not c.startswith("--from=builder")]
    assert others == ["docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh",
                      "docker/healthcheck.py /usr/local/bin/docker-healthcheck"]
    for script in ("docker/entrypoint.sh", "docker/healthcheck.py"):  # COPY keeps the mode from the context
        assert os.access(ROOT / script, os.X_OK), f"chmod +x {script}"
    assert not any("pip " in run for run in instruction_args(runtime, "RUN")), "no installs in the final stage"


def test_dockerfile_runtime_runs_as_the_unprivileged_uid() -> None:
    runtime = docker_stages()[-1]
    users = instruction_args(runtime, "USER")
    assert users, "the final stage must set USER"
    # Numeric, so Kubernetes' runAsNonRoot can verify it.
    assert users[-1].split(":")[0] == str(GATEWAY_UID)
    assert any(f"--uid {GATEWAY_UID}" in run for run in instruction_args(runtime, "RUN"))


def test_dockerfile_healthcheck_follows_the_served_port() -> None:
    """One check for every role, which reads the port the container was started with (docker/healthcheck.py,
    tested in test_healthcheck.py): a hard-coded 8000 reports `serve --port 9000` unhealthy."""
    checks = instruction_args(docker_stages()[-1], "HEALTHCHECK")
    assert len(checks) == 1
    assert checks[0].endswith('CMD ["docker-healthcheck"]')
    assert "8000" not in checks[0]


def test_dockerfile_builds_with_the_classic_builder_and_offline() -> None:
    """No `# syntax=` line (BuildKit would fetch that frontend image from a registry), and nothing the classic
    builder of Compose v1 refuses (`COPY --chmod`, `RUN --mount`, heredocs)."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    for stage in docker_stages():
        for keyword, rest in stage:
            assert not rest.startswith(("--chmod", "--link", "--mount", "--network", "--security")), rest
            assert "<<" not in rest, f"{keyword} {rest}: heredocs need BuildKit"


def test_dockerfile_installs_exactly_the_locked_versions() -> None:
    """Every pip step that may reach an index installs from constraints.txt; the gateway's own wheel is built
    and installed with no index at all, and without fetching a build backend."""
    builder = docker_stages()[0]
    copies = " ".join(instruction_args(builder, "COPY"))
    assert "constraints.txt" in copies
    steps = [step.strip() for run in instruction_args(builder, "RUN") for step in re.split(r"&&|;", run)]
    pip_steps = [step for step in steps if re.match(r"(\S*/)?pip (install|wheel)", step)]
    assert pip_steps
    for step in pip_steps:
        assert "-c constraints.txt" in step or "--no-index" in step, step
        if " wheel " in f" {step} " and "." in step.split():
            assert "--no-build-isolation" in step, f"{step}: an isolated build fetches setuptools"


def test_dockerfile_exposes_the_api_and_the_metrics_ports() -> None:
    exposed = {port for rest in instruction_args(docker_stages()[-1], "EXPOSE") for port in rest.split()}
    assert {"8000", str(API_METRICS_PORT), str(WORKER_METRICS_PORT)} <= exposed


def test_dockerfile_entrypoint_and_default_command() -> None:
    runtime = docker_stages()[-1]
    assert instruction_args(runtime, "ENTRYPOINT") == ['["docker-entrypoint.sh"]']
    assert instruction_args(runtime, "CMD") == ['["serve", "--host", "0.0.0.0", "--port", "8000"]']
    env = " ".join(instruction_args(runtime, "ENV"))
    assert "PATH=/opt/venv/bin:$PATH" in env
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus" in env


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[([^\]]*)\\\]", r"[\1]", regex)
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_sends_the_build_sources_and_nothing_secret() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    sources = [src for stage in docker_stages() for rest in instruction_args(stage, "COPY")
               if "--from=" not in rest for src in rest.split()[:-1] if not src.startswith("--")]
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignore_excludes(source, patterns), f"COPY {source}: excluded by .dockerignore"
        assert not dockerignore_excludes(f"{source}/x.py", patterns) or not (ROOT / source).is_dir()
    for private in (".env", ".git/config", ".venv/bin/python", "tests/conftest.py", "llm_gateway.db",
                    "shared/__pycache__/config.cpython-311.pyc"):
        assert dockerignore_excludes(private, patterns), f"{private} would be sent to the Docker daemon"


def test_the_wheel_the_image_installs_ships_every_data_file() -> None:
    """The image installs a wheel, not the source tree: a data file the code reads (a Lua script, a YAML
    table, a migration) that pyproject's package-data does not list is missing at run time."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_data: dict[str, list[str]] = setuptools.get("package-data", {})
    missing = []
    for package in ("api", "worker", "shared", "cli"):
        for path in sorted((ROOT / package).rglob("*")):
            if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / package).parts
            if not any(_glob_matches(relative, pattern) for pattern in package_data.get(package, [])):
                missing.append(str(path.relative_to(ROOT)))
    assert missing == [], "add them to [tool.setuptools.package-data] in pyproject.toml"


def _glob_matches(parts: tuple[str, ...], pattern: str) -> bool:
    pattern_parts = PurePosixPath(pattern).parts
    return len(parts) == len(pattern_parts) and all(map(fnmatch.fnmatchcase, parts, pattern_parts))


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
