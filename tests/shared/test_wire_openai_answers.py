"""shared.wire.openai answers both ways: what OpenAI sends (tool calls, refusals, logprobs, usage details,
unmodelled fields) read into a Completion and deltas, and rendered back to an OpenAI client, checked with the
SDK's types and its own stream accumulator (`ChatCompletionStreamState`); answers Anthropic served too."""

import json

import httpx2
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from shared.content import TextPart, ThinkingPart, ToolCallPart
from shared.models import Completion, Delta, FinishReason, ToolCallDelta, Usage, WireFormat
from shared.wire import openai as wire
from tests.shared.wire_openai_support import completion, sdk_client, sse

LOGPROBS = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}], "refusal": None}
CALLS = [
    {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
    {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}},
]
USAGE = {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160,
         "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 32, "audio_tokens": 0, "accepted_prediction_tokens": 3,
                                       "rejected_prediction_tokens": 1}}
ANSWER = {
    "id": "chatcmpl-7", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_1", "service_tier": "default",
    "choices": [
        {"index": 0, "finish_reason": "tool_calls", "logprobs": LOGPROBS,
         "message": {"role": "assistant", "content": "Let me check.", "refusal": None, "tool_calls": CALLS,
                     "annotations": []}},
        {"index": 1, "finish_reason": "stop", "logprobs": None,
         "message": {"role": "assistant", "content": "Second answer", "refusal": None, "annotations": []}},
    ],
    "usage": USAGE,
}


def test_parse_completion_keeps_everything_openai_said() -> None:
    parsed = wire.parse_completion(ChatCompletion.model_validate(ANSWER).model_dump(), "openai")
    assert parsed.content == "Let me check."
    assert parsed.parts == [TextPart(text="Let me check."),
                            ToolCallPart(id="call_a", name="weather", arguments='{"city":"Oslo"}'),
                            ToolCallPart(id="call_b", name="time", arguments="{}")]
    assert parsed.finish_reason == FinishReason.TOOL_CALLS
    assert parsed.usage == Usage(prompt_tokens=120, completion_tokens=40, cached_prompt_tokens=64, reasoning_tokens=32)
    assert (parsed.logprobs, parsed.system_fingerprint, parsed.service_tier) == (LOGPROBS, "fp_1", "default")
    assert parsed.extra_format == WireFormat.OPENAI
    assert parsed.extra["message"] == {"annotations": []}
    assert parsed.extra["usage"] == USAGE


def test_an_openai_answer_renders_back_as_openai_sent_it() -> None:
    rendered = wire.render_completion(wire.parse_completion(ANSWER, "openai"))
    assert rendered.pop("provider") == "openai"
    assert rendered == ANSWER
    ChatCompletion.model_validate(rendered)


def test_a_refusal_is_the_refusal_field_with_finish_stop() -> None:
    answer = {**ANSWER, "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                     "message": {"role": "assistant", "content": None, "refusal": "I can't."}}]}
    parsed = wire.parse_completion(answer, "openai")
    assert (parsed.refusal, parsed.content, parsed.finish_reason) == ("I can't.", "", FinishReason.REFUSAL)
    message = ChatCompletion.model_validate(wire.render_completion(parsed)).choices[0]
    assert (message.message.refusal, message.message.content, message.finish_reason) == ("I can't.", None, "stop")


def test_an_anthropic_answer_reads_as_openai_would_write_it() -> None:
    served = completion(
        provider="anthropic", content="Checking.", finish_reason=FinishReason.TOOL_CALLS,
        parts=[ThinkingPart(text="secret", signature="s"), TextPart(text="Checking."),
               ToolCallPart(id="toolu_1", name="weather", arguments='{"city":"Oslo"}')],
        usage=Usage(prompt_tokens=10, completion_tokens=5, cache_write_tokens=4, reasoning_tokens=2),
        extra={"container": {"id": "c"}}, extra_format=WireFormat.ANTHROPIC, stop_sequence=None,
    )
    rendered = wire.render_completion(served)
    assert "container" not in rendered and "secret" not in json.dumps(rendered)
    parsed = ChatCompletion.model_validate(rendered)
    message = parsed.choices[0].message
    assert message.content == "Checking."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []] == [  # type: ignore[union-attr]
        ("toolu_1", "weather", '{"city":"Oslo"}')]
    assert parsed.choices[0].finish_reason == "tool_calls"
    assert parsed.usage is not None and parsed.usage.completion_tokens_details is not None
    assert parsed.usage.completion_tokens_details.reasoning_tokens == 2


def test_an_anthropic_refusal_is_the_refusal_field() -> None:
    rendered = wire.render_completion(completion(content="I won't.", finish_reason=FinishReason.REFUSAL))
    choice = ChatCompletion.model_validate(rendered).choices[0]
    assert (choice.message.refusal, choice.message.content, choice.finish_reason) == ("I won't.", None, "stop")


def test_only_tool_calls_give_null_content() -> None:
    served = completion(content="", finish_reason=FinishReason.TOOL_CALLS,
                        parts=[ToolCallPart(id="c1", name="f", arguments="{}")])
    message = wire.render_completion(served)["choices"][0]["message"]  # type: ignore[index]
    assert message["content"] is None and message["tool_calls"][0]["id"] == "c1"


# --- streams ----------------------------------------------------------------------------------------


def chunk(delta: dict[str, object], finish: str | None = None, **fields: object) -> dict[str, object]:
    data = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **fields}]}
    return ChatCompletionChunk.model_validate(data).model_dump()


def test_parse_chunk_reads_tool_call_pieces_refusals_and_logprobs() -> None:
    first = {"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                             "function": {"name": "weather", "arguments": ""}}]}
    rest = {"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}
    assert wire.parse_chunk(chunk(first)) == [Delta(tool_call=ToolCallDelta(index=0, id="call_a", name="weather"))]
    assert wire.parse_chunk(chunk(rest)) == [Delta(tool_call=ToolCallDelta(index=0, arguments='{"city"'))]
    assert wire.parse_chunk(chunk({"refusal": "No"})) == [Delta(refusal="No")]
    assert wire.parse_chunk(chunk({"content": "Hi"}, logprobs=LOGPROBS)) == [Delta(text="Hi", logprobs=LOGPROBS)]
    usage = {**chunk({}, "tool_calls"), "usage": USAGE}
    assert wire.parse_chunk(usage) == [Delta(finish_reason=FinishReason.TOOL_CALLS, usage=Usage(
        prompt_tokens=120, completion_tokens=40, cached_prompt_tokens=64, reasoning_tokens=32))]


def final(reason: FinishReason, **fields: object) -> Completion:
    return Completion(id="x", model="m", provider="anthropic", content="", finish_reason=reason,
                      usage=Usage(prompt_tokens=9, completion_tokens=4, reasoning_tokens=1), **fields)


def rendered_stream() -> list[tuple[str | None, str]]:
    """An Anthropic-served stream as the worker delivers it: thinking, text, two tool calls (block indexes 2
    and 3, arguments in pieces)."""
    renderer = wire.StreamRenderer("chatcmpl-s", "claude", 1700000000, include_usage=True)
    deltas = [
        Delta(thinking="hmm"), Delta(thinking="", signature="sig"), Delta(text="Checking"), Delta(text="."),
        Delta(tool_call=ToolCallDelta(index=2, id="toolu_1", name="weather", arguments="")),
        Delta(tool_call=ToolCallDelta(index=2, arguments='{"city":')), Delta(tool_call=ToolCallDelta(index=2,
                                                                                                     arguments='"Oslo"}')),
        Delta(tool_call=ToolCallDelta(index=3, id="toolu_2", name="time", arguments="{}")),
    ]
    events = renderer.start()
    for delta in deltas:
        events += renderer.delta(delta)
    return events + renderer.finish(final(FinishReason.TOOL_CALLS))


def test_the_sdk_accumulator_rebuilds_tool_calls_from_our_stream() -> None:
    state = ChatCompletionStreamState()
    for _, data in rendered_stream():
        if data != "[DONE]":
            state.handle_chunk(ChatCompletionChunk.model_validate_json(data))
    result = state.get_final_completion()
    message = result.choices[0].message
    assert message.content == "Checking."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []] == [  # type: ignore[union-attr]
        ("toolu_1", "weather", '{"city":"Oslo"}'), ("toolu_2", "time", "{}")]
    assert result.choices[0].finish_reason == "tool_calls"
    assert result.usage is not None and result.usage.completion_tokens_details is not None
    assert result.usage.completion_tokens_details.reasoning_tokens == 1


def test_tool_call_first_piece_carries_id_type_name_and_empty_arguments() -> None:
    pieces = [json.loads(data)["choices"] for _, data in rendered_stream() if data != "[DONE]"]
    calls = [c[0]["delta"]["tool_calls"][0] for c in pieces if c and "tool_calls" in c[0]["delta"]]
    assert calls[0] == {"index": 0, "id": "toolu_1", "type": "function",
                        "function": {"name": "weather", "arguments": ""}}
    assert calls[1] == {"index": 0, "function": {"arguments": '{"city":'}}
    assert calls[3] == {"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "time", "arguments": ""}}
    assert calls[4] == {"index": 1, "function": {"arguments": "{}"}}
    assert "hmm" not in json.dumps(pieces) and "sig" not in json.dumps(pieces)


async def test_the_sdk_stream_reads_refusals_and_logprobs() -> None:
    renderer = wire.StreamRenderer("chatcmpl-r", "gpt-4o", 1, include_usage=False)
    events = renderer.delta(Delta(refusal="I can")) + renderer.delta(Delta(refusal="'t."))
    events += renderer.delta(Delta(text="x", logprobs=LOGPROBS))
    events += renderer.finish(final(FinishReason.REFUSAL, system_fingerprint="fp_9"))
    payload = sse(events)
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    state = ChatCompletionStreamState()
    try:
        stream = await client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
        async for piece in stream:
            state.handle_chunk(piece)
    finally:
        await client.close()
    result = state.get_final_completion()
    assert result.choices[0].message.refusal == "I can't."
    assert result.choices[0].finish_reason == "stop"
    assert result.system_fingerprint == "fp_9"
    assert result.choices[0].logprobs is not None and result.choices[0].logprobs.content is not None
    assert result.choices[0].logprobs.content[0].token == "Hi"


def test_an_openai_stream_parsed_and_rendered_again_is_the_same_stream() -> None:
    source = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}),
              chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "f", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}), chunk({}, "tool_calls")]
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=False)
    events = [event for data in source for delta in wire.parse_chunk(data) if not delta.finish_reason
              for event in renderer.delta(delta)]
    events += renderer.finish(final(FinishReason.TOOL_CALLS))
    again = [delta for _, data in events if data != "[DONE]" for delta in wire.parse_chunk(json.loads(data))]
    assert again == [delta for data in source for delta in wire.parse_chunk(data)]
