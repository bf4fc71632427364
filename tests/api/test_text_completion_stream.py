"""The relay of a streamed legacy completion (api/text_completion_stream.py) on real Redis: coalesced token
events become chunks per choice; a retried attempt (`reset`) after text was sent ends the stream with an
explicit error and cancels the job, so text never repeats; a reset before any text is invisible."""

import json

from fastapi import Request

from api.deps import AppState
from api.shards import ShardHandles
from api.submit import Submission
from api.text_completion_stream import _relay
from shared.endpoint import TextChoice, TextCompletionOutput
from shared.endpoint_requests import TextCompletionRequest
from shared.models import Completion, JobStatus, Usage, WireFormat
from shared.streams import EventKind, append_event

CALL = TextCompletionRequest(model="ep-instruct", prompt="Say hi", stream=True)
HEAD: dict[str, object] = {"id": "cmpl-job_t", "object": "text_completion", "created": 1, "model": "ep-instruct"}


async def _job(shard: ShardHandles, events: list[tuple[EventKind, dict[str, object]]]) -> None:
    await shard.store.create("job_t", "ten_1", CALL, WireFormat.OPENAI)
    await shard.store.mark_running("job_t", 1, "worker-1")
    for kind, data in events:
        await append_event(shard.redis, "job_t", kind, data, maxlen=1000, ttl_s=600)


async def _chunks(state: AppState, shard: ShardHandles) -> list[str]:
    http = Request({"type": "http", "method": "POST", "path": "/v1/completions", "headers": []})
    stream = _relay(state, shard, http, None, CALL, Submission(job_id="job_t"), HEAD, False,  # type: ignore[arg-type]
                    owns_job=True)
    return [item["data"] async for item in stream]


def _done(text: str) -> dict[str, object]:
    completion = Completion(id="cmpl-job_t", model="gpt-3.5-turbo-instruct", provider="openai", content="",
                            usage=Usage(prompt_tokens=2, completion_tokens=2),
                            output=TextCompletionOutput(choices=[TextChoice(index=0, text=text,
                                                                            finish_reason="stop")]))
    return {"completion": completion.model_dump(mode="json"), "cost_usd": 0.0, "fallback_used": False,
            "provider_ms": 5}


async def test_text_completion_stream_ends_with_an_error_when_a_retry_follows_text(
        state: AppState, shard: ShardHandles) -> None:
    await _job(shard, [(EventKind.TOKEN, {"text": "Hello", "index": 0}), (EventKind.RESET, {"attempt": 2}),
                       (EventKind.TOKEN, {"text": "Hello", "index": 0}), (EventKind.DONE, _done("Hello"))])
    chunks = await _chunks(state, shard)
    assert json.loads(chunks[0])["choices"][0]["text"] == "Hello"
    assert len(chunks) == 2 and "[DONE]" not in chunks
    error = json.loads(chunks[1])["error"]
    assert error["code"] == "stream_interrupted" and "restarted" in error["message"]
    record = await shard.store.get("job_t")
    assert record is not None and (record.status is JobStatus.CANCELLED or await shard.store.cancel_requested("job_t"))


async def test_text_completion_stream_ignores_a_retry_before_any_text(
        state: AppState, shard: ShardHandles) -> None:
    await _job(shard, [(EventKind.RESET, {"attempt": 2}), (EventKind.TOKEN, {"text": "Hi ", "index": 0}),
                       (EventKind.TOKEN, {"text": "there", "index": 0}), (EventKind.DONE, _done("Hi there"))])
    chunks = await _chunks(state, shard)
    texts = [json.loads(chunk)["choices"][0]["text"] for chunk in chunks[:-1]]
    assert texts == ["Hi ", "there", ""] and chunks[-1] == "[DONE]"
    assert json.loads(chunks[2])["choices"][0]["finish_reason"] == "stop"
