"""Settings: the seed's variables work, URLs are derived from host variables, and a bad value stops start-up
with a message naming the variable."""

import io
import subprocess
import sys

import pytest
from pydantic import ValidationError

from shared.config import Settings
from tests.support.processes import REPO


def test_config_seed_host_variables_build_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PASSWORD", "pw")
    settings = Settings(_env_file=None)
    assert settings.resolved_redis_url == "redis://cache.internal:6379/0"
    assert settings.resolved_database_url == "postgresql+asyncpg://postgres:pw@db.internal:5432/llm_gateway"
    assert settings.embedded is False


def test_config_defaults_to_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "REDIS_HOST", "DATABASE_URL", "POSTGRES_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.embedded and settings.resolved_database_url.startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DEFAULT_RATE_LIMIT", "lots"), ("REDIS_URL", "http://x"), ("DATABASE_URL", "mysql://x"),
     ("LOG_LEVEL", "LOUD"), ("LOG_FORMAT", "yaml"), ("CACHE_TTL", "-1"), ("REDIS_PORT", "99999")],
)
def test_config_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert variable.lower() in str(caught.value).lower()


def test_config_production_refuses_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("ADMIN_API_KEY", "a-real-admin-key")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None)


def test_cli_bad_value_stops_startup_with_variable_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate"], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DEFAULT_RATE_LIMIT": "many"},
    )
    assert result.returncode == 2
    assert "default_rate_limit" in result.stderr.lower()


def test_config_default_rate_limit_is_the_specified_100_per_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEFAULT_RATE_LIMIT", raising=False)
    assert Settings(_env_file=None).default_rate_limit == 100


class _Stderr(io.StringIO):
    """A stderr that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("tty", "expected"), [(True, "text"), (False, "json")])
def test_config_log_format_defaults_by_whether_stderr_is_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tty: bool, expected: str
) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.setattr(sys, "stderr", _Stderr(tty))
    settings = Settings(_env_file=None)
    assert settings.log_format is None
    assert settings.resolved_log_format == expected


@pytest.mark.parametrize("tty", [True, False])
@pytest.mark.parametrize("explicit", ["json", "text"])
def test_config_explicit_log_format_wins_over_the_terminal_check(
    monkeypatch: pytest.MonkeyPatch, tty: bool, explicit: str
) -> None:
    monkeypatch.setenv("LOG_FORMAT", explicit)
    monkeypatch.setattr(sys, "stderr", _Stderr(tty))
    assert Settings(_env_file=None).resolved_log_format == explicit


def test_config_log_format_without_a_stderr_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.setattr(sys, "stderr", None)
    assert Settings(_env_file=None).resolved_log_format == "json"
