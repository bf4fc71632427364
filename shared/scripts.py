"""Lua scripts run by digest. Each hot-path script replaces several round trips (a WATCH, a read and a
MULTI/EXEC) with one; EVALSHA avoids resending the script's text on every call, and the first call after a
Redis restart (or on a fresh server) loads it with EVAL."""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

__all__ = ["LuaScript", "lua_source"]

LUA_DIR = Path(__file__).parent / "lua"


def lua_source(*names: str) -> str:
    """The text of one or more files in shared/lua, joined: later files may call functions the earlier
    ones define (Redis runs each script alone, so shared logic is shared by concatenation)."""
    return "\n".join((LUA_DIR / name).read_text() for name in names)


@dataclass(frozen=True)
class LuaScript:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # Redis's own name

    async def run(self, redis: Redis, keys: list[str], args: list[object]) -> object:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc,arg-type]
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)  # type: ignore[misc,arg-type]
