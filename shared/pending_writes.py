"""Writes built with the usual pipeline code but sent inside a script (issue 17: admission and the job's
creation in one round trip, shared/lua/admit_create.lua).

The job record, its listing index and its queue entry are written by code that queues commands on a redis-py
pipeline (`JobStore.write_on`, `JobQueue.enqueue_on`). Recording those commands on a pipeline that is never
executed, and handing them to the script as arguments, keeps that code the one place that knows the job's
keys and layout: the script runs whatever was recorded, in order, and only when admission allows it. Every
key a write touches is passed in KEYS, as Redis asks of scripts."""

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

__all__ = ["PendingWrites"]

# The commands the recorded code may use, and whether their first argument is a key. Anything else is refused
# when recorded, rather than sent with a key the script would not declare.
_KEYED = {"HSET": True, "EXPIRE": True, "PEXPIRE": True, "ZADD": True, "ZREMRANGEBYSCORE": True, "PSETEX": True,
          "SET": True, "DEL": True, "ZREM": True, "PUBLISH": False}


@dataclass(frozen=True)
class PendingWrites:
    """Recorded commands, each as its name and arguments (the key first, for a keyed command)."""

    commands: tuple[tuple[object, ...], ...]

    @classmethod
    def record(cls, redis: Redis, build: Callable[[Pipeline], None]) -> "PendingWrites":
        """The commands `build` queues on a pipeline of `redis`; the pipeline is dropped unsent (it holds no
        connection until executed)."""
        pipe = redis.pipeline(transaction=False)
        build(pipe)
        commands = tuple(tuple(args) for args, _options in pipe.command_stack)
        for command in commands:
            name = str(command[0]).upper()
            if name not in _KEYED or (_KEYED[name] and len(command) < 2):
                raise ValueError(f"{name} cannot be recorded as a pending write")
        return cls(commands)

    def script_args(self, first_key: int) -> tuple[list[str], list[object]]:
        """The writes' keys (numbered from `first_key` in the script's KEYS) and arguments, as
        admit_create.lua reads them after admission's own."""
        keys: list[str] = []
        args: list[object] = [len(self.commands)]
        for name, *rest in self.commands:
            if _KEYED[str(name).upper()]:
                key, *rest = rest
                keys.append(key.decode() if isinstance(key, bytes) else str(key))
                args += [first_key + len(keys) - 1, len(rest), name, *rest]
            else:
                args += [0, len(rest), name, *rest]
        return keys, args
