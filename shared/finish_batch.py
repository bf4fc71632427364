"""The ends of jobs that fall in the same event-loop tick go to Redis together: one script call
(shared/lua/finish_many.lua) commits them all, where each used to be a round trip of its own. A job's end
waits at most for the current tick's other callbacks to run, not for a timer; a lone end is sent as
finish.lua, exactly as before. Each job gets its own answer: committed, already ended, or its own error (the
batch script runs each end under pcall, so one job's failure is not its neighbours')."""

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.scripts import LuaScript, lua_source
from shared.tick_batch import TickBatcher

__all__ = ["FINISH", "FINISH_KEYS", "FINISH_MANY", "FinishBatch"]

FINISH = LuaScript(lua_source("settle_fn.lua", "finish_fn.lua", "finish.lua"))
FINISH_MANY = LuaScript(lua_source("settle_fn.lua", "finish_fn.lua", "finish_many.lua"))
FINISH_KEYS = 31  # finish_fn.lua's keys per job


@dataclass
class _End:
    keys: list[str]
    args: list[object]
    future: "asyncio.Future[int]"


class FinishBatch(TickBatcher[_End]):
    def __init__(self, redis: Redis) -> None:
        super().__init__()
        self.redis = redis

    async def run(self, keys: list[str], args: list[object]) -> int:
        """Commit one job's end (finish_fn.lua's keys and arguments) with the others of this tick: 1 when
        committed, 0 when the job had already ended."""
        if len(keys) != FINISH_KEYS:
            raise ValueError(f"a job's end takes {FINISH_KEYS} keys, not {len(keys)}")
        end = _End(keys, args, self.running_loop().create_future())
        self.add(end)
        return await end.future

    async def _send(self, batch: list[_End]) -> None:
        try:
            if len(batch) == 1:
                replies: list[object] = [await FINISH.run(self.redis, batch[0].keys, batch[0].args)]
            else:
                reply = await FINISH_MANY.run(self.redis, [key for end in batch for key in end.keys],
                                              [FINISH_KEYS, len(batch), *_arguments(batch)])
                replies = reply if isinstance(reply, list) else [reply] * len(batch)
        except Exception as exc:  # Redis unreachable, a script error: every end of the batch failed with it
            for end in batch:
                if not end.future.done():
                    end.future.set_exception(exc)
            return
        for end, answer in zip(batch, replies, strict=True):
            if end.future.done():  # its job was cancelled while waiting: the end was committed all the same
                continue
            if isinstance(answer, int):
                end.future.set_result(answer)
            else:
                text = answer.decode() if isinstance(answer, bytes) else str(answer)
                end.future.set_exception(ResponseError(f"finish_fn.lua: {text}"))


def _arguments(batch: list[_End]) -> list[object]:
    flat: list[object] = []
    for end in batch:
        flat += [len(end.args), *end.args]
    return flat
