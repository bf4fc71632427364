"""The `response` object and the Responses stream (shared/wire/responses_response.py, responses_stream.py),
read back with the `openai` SDK's own types: the stream's numbering is deterministic from the deltas, its
items are the ones a stored response renders, and the SDK's accumulator assembles the final response."""

import json

from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from shared.content import TextPart, ThinkingPart, ToolCallPart
from shared.errors import AllTargetsFailed, JobCancelled
from shared.models import Completion, Delta, FinishReason, ToolCallDelta, Usage
from shared.wire.responses import ResponseShell, ResponsesStreamRenderer, parse_input, render_response
from shared.wire.responses_response import render_output

EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
SHELL = ResponseShell(id="resp_job_1", model="public", created_at=1, echo={"tools": [], "tool_choice": "auto",
                                                                           "parallel_tool_calls": True})
THINKING = ThinkingPart(text="Let me see", signature="sig", provider="anthropic")
CALL = ToolCallPart(id="call_1", name="get_weather", arguments='{"city":"Paris"}')
COMPLETION = Completion(id="resp_job_1", model="claude", provider="anthropic", content="Sure",
                        finish_reason=FinishReason.TOOL_CALLS, parts=[THINKING, TextPart(text="Sure"), CALL],
                        usage=Usage(prompt_tokens=10, completion_tokens=5, cached_prompt_tokens=4,
                                    reasoning_tokens=2))
DELTAS = [Delta(thinking="Let me "), Delta(thinking="see", signature="sig"), Delta(text="Su"), Delta(text="re"),
          Delta(tool_call=ToolCallDelta(index=2, id="call_1", name="get_weather")),
          Delta(tool_call=ToolCallDelta(index=2, arguments='{"city":')),
          Delta(tool_call=ToolCallDelta(index=2, arguments='"Paris"}'))]


def _stream(deltas: list[Delta], completion: Completion) -> list[ResponseStreamEvent]:
    renderer = ResponsesStreamRenderer(SHELL)
    items = renderer.start()
    for delta in deltas:
        items += renderer.delta(delta)
    items += renderer.finish(completion)
    assert all(name == json.loads(data)["type"] for name, data in items)
    return [EVENTS.validate_python(json.loads(data)) for _, data in items]


def test_render_response_parses_as_the_sdk_response() -> None:
    response = Response.model_validate(render_response(SHELL, status="completed", completion=COMPLETION))
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    assert response.output_text == "Sure"
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 2 and response.usage.total_tokens == 15


def test_render_response_is_incomplete_at_max_tokens() -> None:
    cut = COMPLETION.model_copy(update={"finish_reason": FinishReason.LENGTH, "parts": []})
    response = Response.model_validate(render_response(SHELL, status="incomplete", completion=cut))
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


def test_stream_numbers_events_from_zero_and_the_sdk_accumulates_them() -> None:
    events = _stream(DELTAS, COMPLETION)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    state: ResponseStreamState[object] = ResponseStreamState(input_tools=[], text_format=omit)
    for event in events:
        state.handle_event(event)
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == "Sure"
    assert [item.type for item in final.response.output] == ["reasoning", "message", "function_call"]


def test_stream_items_are_the_stored_response_items() -> None:
    streamed = _stream(DELTAS, COMPLETION)[-1]
    assert streamed.type == "response.completed"
    assert [item.model_dump(exclude_none=True) for item in streamed.response.output] == [
        item.model_dump(exclude_none=True)
        for item in Response.model_validate(render_response(SHELL, status="completed", completion=COMPLETION)).output]


def test_stream_is_the_same_when_rendered_again() -> None:
    assert _stream(DELTAS, COMPLETION) == _stream(DELTAS, COMPLETION)


def test_stream_error_is_response_failed_with_cancelled_status_for_a_cancel() -> None:
    renderer = ResponsesStreamRenderer(SHELL)
    items = renderer.start() + renderer.delta(Delta(text="par")) + renderer.error(JobCancelled("stop"))
    last = EVENTS.validate_python(json.loads(items[-1][1]))
    assert last.type == "response.failed" and last.response.status == "cancelled" and last.response.error is None
    assert last.sequence_number == len(items) - 1


def test_output_items_sent_back_as_input_keep_thinking_and_calls() -> None:
    items = render_output("resp_job_1", COMPLETION)
    messages = parse_input([{"role": "user", "content": "hi"}, *items])
    assert messages[1].content == [THINKING, TextPart(text="Sure"), CALL]


def test_stream_error_names_the_gateway_code_beside_openai_s() -> None:
    renderer = ResponsesStreamRenderer(SHELL)
    items = renderer.start() + renderer.error(AllTargetsFailed("every target failed"))
    last = EVENTS.validate_python(json.loads(items[-1][1]))
    assert last.type == "response.failed" and last.response.error is not None
    assert last.response.error.code == "server_error"
    assert json.loads(items[-1][1])["response"]["error"]["gateway_code"] == "all_targets_failed"
