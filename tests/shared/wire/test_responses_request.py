"""The Responses body read into the internal model (shared/wire/responses_request.py, responses_items.py):
each field translated, honoured or refused by name, input items merged into turns as the upstream APIs want."""

import pytest

from shared.content import DocumentPart, ImagePart, TextPart, ThinkingPart, ToolCallPart, ToolResultPart
from shared.errors import InvalidRequest
from shared.wire.responses import parse_responses_request
from shared.wire.responses_items import input_items, seal_thinking


def _parse(**fields: object) -> object:
    return parse_responses_request({"model": "m", "input": "hi", **fields})


def test_parse_request_translates_every_modelled_field() -> None:
    parsed = parse_responses_request({
        "model": "m", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 64, "temperature": 0.2,
        "top_p": 0.9, "user": "u1", "parallel_tool_calls": False, "tool_choice": {"type": "function", "name": "f"},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "low"}, "service_tier": "flex", "prompt_cache_key": "k", "safety_identifier": "s",
        "metadata": {"team": "qa"}, "include": ["reasoning.encrypted_content"], "truncation": "disabled",
    })
    chat = parsed.chat
    assert chat.system_text == "Be brief." and chat.max_tokens == 64 and chat.temperature == 0.2
    assert chat.top_p == 0.9 and chat.user == "u1" and chat.parallel_tool_calls is False
    assert chat.tool_choice is not None and chat.tool_choice.name == "f"
    assert chat.tools[0].name == "f" and chat.tools[0].strict is True
    assert chat.output_format is not None and chat.output_format.name == "a"
    assert chat.reasoning is not None and chat.reasoning.effort == "low"
    assert (chat.service_tier, chat.prompt_cache_key, chat.safety_identifier) == ("flex", "k", "s")
    assert chat.metadata is None and parsed.echo["metadata"] == {"team": "qa"}  # the response's own, not upstream
    assert chat.store is None and parsed.store is True and chat.extra == {}


@pytest.mark.parametrize(("fields", "named"), [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0].type"),
    ({"tools": [{"type": "computer_use_preview"}]}, "tools[0].type"),
    ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
    ({"include": ["message.output_text.logprobs"]}, "include"),
    ({"truncation": "auto"}, "truncation"),
    ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
    ({"text": {"format": {"type": "text"}, "verbosity": "low"}}, "text.verbosity"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "p"}}, "prompt"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"background": True, "store": False}, "background"),
    ({"stream_options": {"include_obfuscation": True}}, "stream_options.include_obfuscation"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].encrypted_content"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].file_id"),
    ({"input": []}, "input"),
])
def test_parse_request_refuses_by_name(fields: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _parse(**fields)
    assert f"'{named}'" in refused.value.message


def test_parse_input_merges_items_into_turns() -> None:
    thinking = ThinkingPart(text="hm", signature="sig", provider="anthropic")
    chat = parse_responses_request({"model": "m", "input": [
        {"role": "developer", "content": "Rules"},
        {"role": "user", "content": [
            {"type": "input_text", "text": "Look"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "hm"}],
         "encrypted_content": seal_thinking(thinking)},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Calling"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
    ]}).chat
    assert [message.role for message in chat.messages] == ["developer", "user", "assistant", "user"]
    user = chat.messages[1].content
    assert isinstance(user[1], ImagePart) and user[1].media_type == "image/png" and user[1].detail == "low"
    assert isinstance(user[2], DocumentPart) and user[2].filename == "a.pdf"
    assistant = chat.messages[2].content
    assert assistant[0] == thinking and assistant[1] == TextPart(text="Calling")
    assert [part.id for part in assistant[2:] if isinstance(part, ToolCallPart)] == ["c1", "c2"]
    results = chat.messages[3].content
    assert [part.tool_call_id for part in results if isinstance(part, ToolResultPart)] == ["c1", "c2"]


def test_input_items_lists_a_string_input_as_one_user_message_with_an_id() -> None:
    items = input_items("hi", "resp_job_ab")
    assert items == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}],
                      "id": "msg_job_ab_in0"}]
