"""Which Redis shard holds a tenant (docs/SHARDING.md). Rendezvous (highest-random-weight) hashing: every
shard gets a score for the tenant, a hash of the shard's identity and the tenant id, and the highest score
wins. The answer depends only on the tenant id and the set of shard identities, so every API process and
every worker agree without asking anyone, and adding a shard moves only the tenants whose new top score is
the new shard's (about 1/n of them); removing one moves only that shard's tenants.

A shard's identity is its URL without credentials, not its position in `REDIS_SHARDS`: reordering the list
moves nobody, and a password rotation moves nobody. A shard moved to another address must keep its name in
the list (`name=redis://...`), or its tenants move with the address change."""

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ShardSpec", "parse_shards", "rendezvous_index", "shard_identity"]

URL_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class ShardSpec:
    """One configured shard: its place in the list (the `shard` label of metrics and /health), the name its
    tenants hash against, and the URL its clients connect to."""

    index: int
    name: str
    url: str


def shard_identity(url: str) -> str:
    """The URL without user and password: what the tenant hash uses when no name is given."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def parse_shards(value: str) -> tuple[ShardSpec, ...]:
    """`REDIS_SHARDS`: comma-separated `redis://...` URLs, each optionally named `name=redis://...`. Raises
    ValueError naming the bad entry (empty list, bad scheme, duplicate URL or name)."""
    specs: list[ShardSpec] = []
    for position, raw in enumerate(part.strip() for part in value.split(",")):
        if not raw:
            raise ValueError(f"REDIS_SHARDS entry {position} is empty (a stray comma?)")
        name, url = _split_name(raw)
        if not url.startswith(URL_SCHEMES):
            raise ValueError(f"REDIS_SHARDS entry {position} ({shard_identity(url)!r}) must start with redis://, "
                             "rediss:// or unix://")
        specs.append(ShardSpec(index=position, name=name or shard_identity(url), url=url))
    for label, values in (("URL", [shard_identity(s.url) for s in specs]), ("name", [s.name for s in specs])):
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"REDIS_SHARDS names the same shard {label} twice: {', '.join(duplicates)}")
    return tuple(specs)


def _split_name(raw: str) -> tuple[str | None, str]:
    """`name=url` -> (name, url); a bare URL -> (None, url). A URL's own `=` (in its query) follows `://`."""
    head, sep, tail = raw.partition("=")
    if sep and "://" not in head:
        if not head.strip():
            raise ValueError(f"REDIS_SHARDS entry {raw!r} has an empty name before '='")
        return head.strip(), tail.strip()
    return None, raw


def rendezvous_index(tenant_id: str, names: tuple[str, ...]) -> int:
    """The position in `names` of the shard that holds `tenant_id`: the highest hash of (name, tenant).
    blake2b, not Python's `hash`, so every process (whatever its PYTHONHASHSEED) gives the same answer."""
    if len(names) == 1:
        return 0
    return _rendezvous(tenant_id, names)


@lru_cache(maxsize=65_536)
def _rendezvous(tenant_id: str, names: tuple[str, ...]) -> int:
    # Cached: a tenant's requests ask again and again; 64 Ki tenants x ~200 bytes is ~13 MB at most.
    scores = [_score(name, tenant_id) for name in names]
    return max(range(len(names)), key=scores.__getitem__)


def _score(name: str, tenant_id: str) -> int:
    digest = hashlib.blake2b(f"{name}\x00{tenant_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
