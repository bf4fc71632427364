"""Tenant -> Redis shard (shared/shards.py): REDIS_SHARDS is parsed with clear errors; rendezvous hashing is
stable (pinned values: every process and every release agree), spreads tenants evenly, moves only ~1/n of them
to a new shard and only the removed shard's when one goes, and ignores the list's order and credentials. The
settings refuse an ambiguous or bad configuration at start."""

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.shards import ShardSpec, parse_shards, rendezvous_index, shard_identity

A, B, C = "redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0", "redis://10.0.0.3:6379/0"
TENANTS = [f"ten_{n:05d}" for n in range(6000)]
# blake2b-64 of "<name>\0<tenant>", highest wins: pinned, since a change of hash would move every tenant.
PINNED = [1, 2, 1, 2, 1, 1]


def _assign(names: tuple[str, ...]) -> list[str]:
    return [names[rendezvous_index(tenant, names)] for tenant in TENANTS]


def test_shards_parse_urls_names_and_positions() -> None:
    specs = parse_shards(f" {A} , east=redis://:pw@10.0.0.2:6380/1?socket_timeout=1 ")
    assert specs == (ShardSpec(0, A, A),
                     ShardSpec(1, "east", "redis://:pw@10.0.0.2:6380/1?socket_timeout=1"))


def test_shards_identity_drops_credentials() -> None:
    assert shard_identity("rediss://user:secret@cache:6380/2") == "rediss://cache:6380/2"
    assert shard_identity("redis://cache") == "redis://cache"


@pytest.mark.parametrize(("value", "message"), [
    (f"{A},", "entry 1 is empty"),
    (f"{A},http://x:1", "entry 1 ('http://x:1') must start with redis://"),
    (f"{A},redis://:pw@10.0.0.1:6379/0", "same shard URL twice: redis://10.0.0.1:6379/0"),
    (f"x={A},x={B}", "same shard name twice: x"),
    (f"={A}", "empty name"),
])
def test_shards_parse_refuses_bad_lists(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse_shards(value)


def test_shards_rendezvous_is_pinned() -> None:
    """Changing the hash would move every tenant: these values must never change."""
    names = (A, B, C)
    assert [rendezvous_index(t, names) for t in ("ten_a", "ten_b", "ten_c", "ten_d", "ten_e", "ten_f")] \
        == PINNED


def test_shards_one_shard_takes_everyone() -> None:
    assert {rendezvous_index(tenant, ("only",)) for tenant in TENANTS[:100]} == {0}


def test_shards_spread_tenants_evenly() -> None:
    assignment = _assign((A, B, C))
    for name in (A, B, C):
        assert 0.30 < assignment.count(name) / len(TENANTS) < 0.37, name


def test_shards_adding_a_shard_moves_about_a_third_and_only_to_it() -> None:
    before, after = _assign((A, B)), _assign((A, B, C))
    moved = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert {new for _, new in moved} == {C}
    assert 0.30 < len(moved) / len(TENANTS) < 0.37


def test_shards_removing_a_shard_moves_only_its_tenants() -> None:
    before, after = _assign((A, B, C)), _assign((A, C))
    assert all(old == new for old, new in zip(before, after, strict=True) if old != B)


def test_shards_order_of_the_list_moves_nobody() -> None:
    assert _assign((A, B, C)) == _assign((C, A, B))


def test_settings_redis_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, redis_shards=f"{A},{B}", worker_shards="1")  # type: ignore[call-arg]
    assert [spec.url for spec in settings.shard_specs] == [A, B]
    assert settings.served_shards() == (1,) and settings.embedded is False
    assert Settings(_env_file=None, redis_shards=f"{A},{B}").served_shards() == (0, 1)  # type: ignore[call-arg]


def test_settings_single_redis_is_one_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, redis_url=A)  # type: ignore[call-arg]
    assert settings.shard_specs == (ShardSpec(0, A, A),) and settings.served_shards() == (0,)


@pytest.mark.parametrize(("fields", "message"), [
    ({"redis_shards": f"{A},{B}", "redis_url": A}, "Set REDIS_SHARDS or REDIS_URL/REDIS_HOST, not both"),
    ({"redis_shards": f"{A},ftp://b"}, "REDIS_SHARDS entry 1"),
    ({"redis_shards": f"{A},{B}", "worker_shards": "2"}, r"WORKER_SHARDS names shard\(s\) \[2\], but there are 2"),
    ({"redis_url": A, "worker_shards": "0,x"}, "WORKER_SHARDS must be comma-separated shard numbers"),
])
def test_settings_refuse_bad_shard_configuration(monkeypatch: pytest.MonkeyPatch, fields: dict[str, str],
                                                 message: str) -> None:
    for name in ("REDIS_URL", "REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **fields)  # type: ignore[arg-type]
