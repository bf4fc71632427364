"""docs/API.md's "Responses requests" and "Responses responses" tables against the code: every request row
has a sample body here (and every sample a row), a row the table says is refused is refused by
`parse_responses_request` naming its field, a translated row changes the internal request, and every
response row names fields a rendered `response` has. So the documentation cannot drift."""

import re

import pytest

from shared.content import ThinkingPart, ToolCallPart
from shared.errors import InvalidRequest
from shared.models import Completion, Usage
from shared.wire.responses import ResponseShell, parse_responses_request, render_response
from shared.wire.responses_items import seal_thinking
from tests.shared.test_compat_matrix import TABLES

REQUESTS, RESPONSES = "Responses requests", "Responses responses"
REFUSED = "refused: `invalid_request_error`"
VERDICTS = ("translated", "honoured by the gateway", REFUSED)
SEALED = seal_thinking(ThinkingPart(text="t", signature="s", provider="anthropic"))
IMAGE = "data:image/png;base64,iVBORw0KGgo="


def _user(*parts: dict[str, object]) -> dict[str, object]:
    return {"input": [{"role": "user", "content": list(parts)}]}


def _turns(*items: dict[str, object]) -> dict[str, object]:
    return {"input": [{"role": "user", "content": "hi"}, *items]}


CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}}
# row -> (the body's fields besides model and a plain input, the field a refusal names)
SAMPLES: dict[str, tuple[dict[str, object], str | None]] = {
    "`model`": ({"model": "other"}, None),
    "`input` (string)": ({"input": "hello"}, None),
    "`input[]` message, `input_text` / `output_text`": (_turns({"role": "assistant", "content": [
        {"type": "output_text", "text": "yes"}]}), None),
    "`input[]` `role` `system` / `developer`": (_turns({"role": "developer", "content": "rules"}), None),
    "`input[]` `input_image` (URL or data URL)": (_user({"type": "input_image", "image_url": IMAGE}), None),
    "`input[]` `input_image.file_id`": (_user({"type": "input_image", "file_id": "f"}), "input[0].content[0].file_id"),
    "`input[]` `input_file` (`file_data`, `file_url`, `file_id`)": (_user({"type": "input_file",
                                                                            "file_url": "https://x/a.pdf"}), None),
    "`input[]` `function_call`": (_turns(CALL), None),
    "`input[]` `function_call_output`": (_turns(CALL, {"type": "function_call_output", "call_id": "c1",
                                                       "output": "ok"}), None),
    "`input[]` `reasoning` with the gateway's `encrypted_content`": (_turns({"type": "reasoning", "summary": [],
                                                                            "encrypted_content": SEALED}), None),
    "`input[]` `reasoning` without it": (_turns({"type": "reasoning", "summary": []}), "input[1].encrypted_content"),
    "`input[]` `item_reference`, built-in tool items": (_turns({"type": "item_reference", "id": "x"}),
                                                        "input[1].type"),
    "`instructions`": ({"instructions": "Be brief."}, None),
    "`previous_response_id`": ({"previous_response_id": "resp_job_1"}, None),
    "`tools` `function`": ({"tools": [TOOL]}, None),
    "`tools` built-in (`web_search`, `file_search`, `computer_use_preview`, ...)": ({"tools": [{"type": "web_search"}]},
                                                                                   "tools[0].type"),
    "`tool_choice`": ({"tool_choice": "required"}, None),
    "`parallel_tool_calls`": ({"parallel_tool_calls": False}, None),
    "`text.format`": ({"text": {"format": {"type": "json_object"}}}, None),
    "`text.verbosity`": ({"text": {"verbosity": "low"}}, "text.verbosity"),
    "`reasoning.effort`": ({"reasoning": {"effort": "high"}}, None),
    "`reasoning.summary`": ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
    "`max_output_tokens`": ({"max_output_tokens": 100}, None),
    "`temperature`, `top_p`, `user`": ({"temperature": 0.1, "top_p": 0.5, "user": "u"}, None),
    "`service_tier`, `prompt_cache_key`, `safety_identifier`": ({"service_tier": "flex"}, None),
    "`metadata`": ({"metadata": {"a": "b"}}, None),
    "`store`": ({"store": False}, None),
    "`background`": ({"background": True}, None),
    "`stream`": ({"stream": True}, None),
    "`stream_options.include_obfuscation` `false`": ({"stream_options": {"include_obfuscation": False}}, None),
    "`stream_options.include_obfuscation` `true`": ({"stream_options": {"include_obfuscation": True}},
                                                    "stream_options.include_obfuscation"),
    "`include` `reasoning.encrypted_content`": ({"include": ["reasoning.encrypted_content"]}, None),
    "`include` any other value": ({"include": ["file_search_call.results"]}, "include"),
    "`truncation` `disabled`": ({"truncation": "disabled"}, None),
    "`truncation` `auto`": ({"truncation": "auto"}, "truncation"),
    "other fields (`conversation`, `prompt`, `top_logprobs`, `max_tool_calls`, `context_management`, "
    "`prompt_cache_retention`, ...)": ({"conversation": "c"}, "conversation"),
}
BASE = parse_responses_request({"model": "m", "input": "hi"})


def test_every_request_row_has_a_sample_and_every_sample_a_row() -> None:
    assert set(TABLES[REQUESTS]) == set(SAMPLES)


@pytest.mark.parametrize("row", sorted(SAMPLES))
def test_request_row_is_what_parsing_does(row: str) -> None:
    verdict = TABLES[REQUESTS][row][0]
    assert verdict.startswith(VERDICTS), row
    fields, named = SAMPLES[row]
    body = {"model": "m", "input": "hi", **fields}
    if verdict.startswith(REFUSED):
        with pytest.raises(InvalidRequest) as refused:
            parse_responses_request(body)
        assert f"'{named}'" in refused.value.message
        return
    parsed = parse_responses_request(body)
    assert named is None
    if verdict.startswith("translated"):
        assert parsed.chat != BASE.chat, f"{row}: nothing reached the internal request"
    else:
        assert parsed.chat == BASE.chat.model_copy(update={"stream": parsed.chat.stream}), (
            f"{row}: honoured by the gateway, never sent upstream")


def test_every_response_row_names_fields_of_a_rendered_response() -> None:
    completion = Completion(id="resp_job_1", model="claude", provider="anthropic", content="",
                            parts=[ThinkingPart(text="t", signature="s", provider="anthropic"),
                                   ToolCallPart(id="c", name="f", arguments="{}")], usage=Usage(prompt_tokens=1))
    body = render_response(ResponseShell(id="resp_job_1", model="m", echo=BASE.echo), status="completed",
                           completion=completion)
    for row, cells in TABLES[RESPONSES].items():
        assert all(cell.startswith(("translated", "not available")) for cell in cells), row
        for name in re.findall(r"(?:^|, )`([a-z_]+)", re.sub(r"\(.*?\)", "", row)):
            assert name in body, f"{row}: {name} is not a field of the response"
