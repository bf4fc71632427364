"""docs/API.md's compatibility matrix against the code, field by field: for every request row, a request
carrying that field is built and `unsupported_params` must refuse it for exactly the target columns the row
says "refused", under the row's parameter name, and nothing else; every row has a sample and every sample a
row, and the samples cover every field of the internal model and every kind of content part. So the
documentation cannot drift from what routing does."""

import inspect
import json
import re
from pathlib import Path
from typing import get_args

import pytest

from shared.content import (
    AudioPart,
    ContentPart,
    DocumentPart,
    ImagePart,
    OutputFormat,
    Reasoning,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from shared.errors import UnsupportedParameter
from shared.models import ChatRequest, Message, WireFormat
from shared.wire import anthropic as anthropic_wire
from shared.wire import openai as openai_wire
from shared.wire.capabilities import unsupported_params

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"
CHAT, MESSAGES = "Chat Completions requests", "Messages requests"
RESPONSE_TABLES = ("Chat Completions responses", "Messages responses")
VERDICTS = ("forwarded", "translated", "refused: `unsupported_parameter`", "omitted", "not applicable",
            "not available", "not shown")

Fields = dict[str, object]


def _user(*parts: ContentPart) -> Fields:
    return {"messages": [Message(role="user", content=list(parts))]}


def _turns(*messages: Message) -> Fields:
    return {"messages": [Message(role="user", content="hi"), *messages]}


PNG = ImagePart(data="iVBORw0KGgo=", media_type="image/png")
PDF = DocumentPart(data="JVBERi0=", media_type="application/pdf")
FUNCTION = Tool(name="get_weather", description="Weather", parameters={"type": "object"}, strict=True)
CALL = ToolCallPart(id="call_1", name="get_weather", arguments='{"city":"Paris"}')
WEB_SEARCH = Tool(kind="web_search_20250305", name="web_search",
                  raw={"type": "web_search_20250305", "name": "web_search"})
SCHEMA = OutputFormat(type="json_schema", name="answer", json_schema={"type": "object"}, strict=True)
ANTHROPIC_SCHEMA = OutputFormat(type="json_schema", json_schema={"type": "object"})
"""What a Messages client can say: Anthropic's `output_config.format` has no name and no `strict` flag."""

# (table, row) -> (the request's fields, the parameter name a refusing column must report, or None).
Sample = tuple[Fields, str | None]
SAMPLES: dict[tuple[str, str], Sample] = {
    (CHAT, "`model`"): ({}, None),
    (CHAT, "`messages` (text)"): ({}, None),
    (CHAT, "`messages[]` `system` / `developer` first"):
        ({"messages": [Message(role="developer", content="be brief"), Message(role="user", content="hi")]}, None),
    (CHAT, "`messages[]` `system` / `developer` later"): (_turns(Message(role="system", content="now French")), None),
    (CHAT, "`messages[].name`"): ({"messages": [Message(role="user", content="hi", name="ann")]}, "messages"),
    (CHAT, "`messages[].refusal`"): (_turns(Message(role="assistant", refusal="I can't")), None),
    (CHAT, "`image_url` (URL)"): (_user(ImagePart(url="https://example.com/cat.png")), None),
    (CHAT, "`image_url` (data URL)"): (_user(PNG), None),
    (CHAT, "`image_url` data URL not JPEG, PNG, GIF or WebP"):
        (_user(ImagePart(data="AAAA", media_type="image/heic")), "messages"),
    (CHAT, "`image_url.detail` `auto`"): (_user(ImagePart(url="https://example.com/a.png", detail="auto")), None),
    (CHAT, "`image_url.detail` `low` or `high`"):
        (_user(ImagePart(url="https://example.com/a.png", detail="low")), "messages"),
    (CHAT, "`file.file_data` (PDF)"):
        (_user(DocumentPart(data="JVBERi0=", media_type="application/pdf", filename="a.pdf")), None),
    (CHAT, "`file.file_data` (not PDF)"): (_user(DocumentPart(data="AAAA", media_type="text/csv")), "messages"),
    (CHAT, "`file.file_id`"): (_user(DocumentPart(file_id="file-abc123")), "messages"),
    (CHAT, "`input_audio`"): (_user(AudioPart(data="UklGRg==", format="wav")), "messages"),
    (CHAT, "`messages[].tool_calls`"): (_turns(Message(role="assistant", content=[CALL])), None),
    (CHAT, "`messages[].tool_calls` arguments not a JSON object"):
        (_turns(Message(role="assistant", content=[CALL.model_copy(update={"arguments": '{"city": "Par'})])),
         "messages"),
    (CHAT, "`role: \"tool\"` messages"):
        (_turns(Message(role="assistant", content=[CALL]),
                Message(role="user", content=[ToolResultPart(tool_call_id="call_1", content=[TextPart(text="9C")])])),
         None),
    (CHAT, "`max_tokens` / `max_completion_tokens`"): ({"max_tokens": 100}, None),
    (CHAT, "`temperature` 0..1"): ({"temperature": 0.7}, None),
    (CHAT, "`temperature` above 1"): ({"temperature": 1.5}, "temperature"),
    (CHAT, "`top_p`"): ({"top_p": 0.9}, None),
    (CHAT, "`top_p` with `temperature`"): ({"top_p": 0.9, "temperature": 0.5}, "top_p"),
    (CHAT, "`stop`"): ({"stop": ["END"]}, None),
    (CHAT, "`stop` only whitespace"): ({"stop": ["\n"]}, "stop"),
    (CHAT, "`stream`"): ({"stream": True}, None),
    (CHAT, "`stream_options.include_usage`"): ({"stream": True, "include_usage": True}, None),
    (CHAT, "`tools` (`function`)"): ({"tools": [FUNCTION]}, None),
    (CHAT, "`tools` (`custom`)"):
        ({"tools": [Tool(kind="custom", name="grammar", raw={"type": "custom", "custom": {"name": "grammar"}})]},
         "tools"),
    (CHAT, "`tool_choice`"): ({"tools": [FUNCTION], "tool_choice": ToolChoice(mode="tool", name="get_weather")}, None),
    (CHAT, "`parallel_tool_calls`"): ({"tools": [FUNCTION], "parallel_tool_calls": False}, None),
    (CHAT, "`response_format` `json_object`"): ({"output_format": OutputFormat(type="json_object")}, "response_format"),
    (CHAT, "`response_format` `json_schema`"): ({"output_format": SCHEMA}, None),
    (CHAT, "`reasoning_effort`"): ({"reasoning": Reasoning(effort="high")}, None),
    (CHAT, "`reasoning_effort` with `max_tokens` up to 1024"):
        ({"reasoning": Reasoning(effort="low"), "max_tokens": 1024}, "reasoning_effort"),
    (CHAT, "`seed`"): ({"seed": 42}, "seed"),
    (CHAT, "`frequency_penalty`"): ({"frequency_penalty": 0.5}, "frequency_penalty"),
    (CHAT, "`presence_penalty`"): ({"presence_penalty": -0.5}, "presence_penalty"),
    (CHAT, "`logit_bias`"): ({"logit_bias": {"50256": -100.0}}, "logit_bias"),
    (CHAT, "`logprobs` true"): ({"logprobs": True}, "logprobs"),
    (CHAT, "`logprobs` false"): ({"logprobs": False}, None),
    (CHAT, "`top_logprobs`"): ({"top_logprobs": 3}, "top_logprobs"),
    (CHAT, "`n` 1"): ({"n": 1}, None),
    (CHAT, "`n` above 1"): ({"n": 2}, "n"),
    (CHAT, "`metadata`"): ({"metadata": {"run": "7"}}, "metadata"),
    (CHAT, "`user`"): ({"user": "user-1"}, None),
    (CHAT, "`safety_identifier`"): ({"safety_identifier": "hash-1"}, "safety_identifier"),
    (CHAT, "`service_tier` `auto` or `default`"): ({"service_tier": "default"}, None),
    (CHAT, "`service_tier` `flex`, `scale`, `priority`"): ({"service_tier": "flex"}, "service_tier"),
    (CHAT, "`store` true"): ({"store": True}, "store"),
    (CHAT, "`store` false"): ({"store": False}, None),
    (CHAT, "`prompt_cache_key`"): ({"prompt_cache_key": "tenant-7"}, "prompt_cache_key"),
    (CHAT, "other fields (`prediction`, `modalities`, `audio`, `verbosity`, `web_search_options`, ...)"):
        ({"extra": {"verbosity": "low"}}, "verbosity"),
    # --- Messages ---
    (MESSAGES, "`model`"): ({}, None),
    (MESSAGES, "`max_tokens`"): ({"max_tokens": 1024}, None),
    (MESSAGES, "`messages` (text)"): ({}, None),
    (MESSAGES, "`messages[]` `role: \"system\"`"): (_turns(Message(role="system", content="now French")), None),
    (MESSAGES, "`system`"): ({"system": "be brief"}, None),
    (MESSAGES, "`system[].citations`"):
        ({"system": [TextPart(text="see", citations=[{"type": "char_location"}])]}, "system"),
    (MESSAGES, "`cache_control` (system, messages, tools)"):
        ({"system": [TextPart(text="long", cache_control={"type": "ephemeral", "ttl": "1h"})],
          "tools": [Tool(name="f", parameters={"type": "object"}, cache_control={"type": "ephemeral"})],
          **_user(TextPart(text="hi", cache_control={"type": "ephemeral"}))}, None),
    (MESSAGES, "`image` (`base64`)"): (_user(PNG), None),
    (MESSAGES, "`image` (`url`)"): (_user(ImagePart(url="https://example.com/cat.png")), None),
    (MESSAGES, "`document` (`base64` PDF)"): (_user(PDF), None),
    (MESSAGES, "`document` (`text`)"): (_user(DocumentPart(text="plain words", media_type="text/plain")), None),
    (MESSAGES, "`document` (`url`)"): (_user(DocumentPart(url="https://example.com/a.pdf")), "messages"),
    (MESSAGES, "`document` (`file`)"): (_user(DocumentPart(file_id="file_011abc")), "messages"),
    (MESSAGES, "`document` `title`"): (_user(DocumentPart(data="JVBERi0=", media_type="application/pdf", title="Q3")),
                                       None),
    (MESSAGES, "`document` `context`, `citations`"):
        (_user(DocumentPart(data="JVBERi0=", media_type="application/pdf", context="Q3", citations={"enabled": True})),
         "messages"),
    (MESSAGES, "`text` `citations`"):
        (_turns(Message(role="assistant", content=[TextPart(text="per the doc", citations=[{"type": "x"}])])),
         "messages"),
    (MESSAGES, "`tool_use`"): (_turns(Message(role="assistant", content=[CALL])), None),
    (MESSAGES, "`tool_result` (text)"):
        (_user(ToolResultPart(tool_call_id="call_1", content=[TextPart(text="9C")])), None),
    (MESSAGES, "`tool_result` with images or documents"):
        (_user(ToolResultPart(tool_call_id="call_1", content=[PNG])), None),
    (MESSAGES, "other content blocks (`server_tool_use`, `web_search_tool_result`, `search_result`, ...)"):
        ({"messages": [{"role": "user", "content": [
            {"type": "raw", "source": "anthropic", "block": {"type": "search_result", "source": "s", "title": "t"}}]}]},
         "messages"),
    (MESSAGES, "`tool_result.is_error`"):
        (_user(ToolResultPart(tool_call_id="call_1", content=[TextPart(text="boom")], is_error=True)), "messages"),
    (MESSAGES, "`thinking` / `redacted_thinking` blocks"):
        (_turns(Message(role="assistant", content=[ThinkingPart(text="hmm", signature="sig", provider="anthropic"),
                                                   ThinkingPart(redacted="opaque", provider="anthropic"),
                                                   TextPart(text="ok")])), None),
    (MESSAGES, "`temperature`"): ({"temperature": 0.3}, None),
    (MESSAGES, "`top_p`"): ({"top_p": 0.8}, None),
    (MESSAGES, "`top_p` with `temperature`"): ({"top_p": 0.8, "temperature": 0.3}, None),
    (MESSAGES, "`top_k`"): ({"top_k": 40}, "top_k"),
    (MESSAGES, "`stop_sequences` up to 4"): ({"stop": ["a", "b", "c", "d"]}, None),
    (MESSAGES, "`stop_sequences` more than 4"): ({"stop": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
    (MESSAGES, "`stream`"): ({"stream": True}, None),
    (MESSAGES, "`metadata.user_id`"): ({"user": "user-1"}, None),
    (MESSAGES, "`tools` (client tools)"): ({"tools": [FUNCTION]}, None),
    (MESSAGES, "`tools` (server tools: `web_search_20250305`, `bash_20250124`, ...)"):
        ({"tools": [WEB_SEARCH]}, "tools"),
    (MESSAGES, "server tools with `stream: true`"):
        ({"stream": True, "tools": [WEB_SEARCH]}, "tools"),
    (MESSAGES, "`document` with `citations`, `stream: true`"):
        ({"stream": True, **_user(DocumentPart(data="JVBERi0=", media_type="application/pdf",
                                                citations={"enabled": True}))}, "messages"),
    (MESSAGES, "`tool_choice`"): ({"tools": [FUNCTION], "tool_choice": ToolChoice(mode="required")}, None),
    (MESSAGES, "`tool_choice.disable_parallel_tool_use`"):  # the flag rides on a `tool_choice`, `auto` here
        ({"tools": [FUNCTION], "tool_choice": ToolChoice(mode="auto"), "parallel_tool_calls": False}, None),
    (MESSAGES, "`thinking`"): ({"reasoning": Reasoning(mode="enabled", budget_tokens=2048)}, None),
    (MESSAGES, "`output_config.effort`"): ({"reasoning": Reasoning(mode="adaptive", effort="medium")}, None),
    (MESSAGES, "`output_config.format`"): ({"output_format": ANTHROPIC_SCHEMA}, None),
    (MESSAGES, "`service_tier`"): ({"service_tier": "standard_only"}, None),
    (MESSAGES, "`anthropic-beta` header"): ({"betas": ["context-management-2025-06-27"]}, None),
    (MESSAGES, "other fields (`context_management`, `container`, `mcp_servers`, `speed`, ...)"):
        ({"extra": {"context_management": {"edits": []}}}, "context_management"),
}
SOURCES = {CHAT: WireFormat.OPENAI, MESSAGES: WireFormat.ANTHROPIC}
COLUMNS = (WireFormat.OPENAI, WireFormat.ANTHROPIC)
WIRES = {WireFormat.OPENAI: openai_wire, WireFormat.ANTHROPIC: anthropic_wire}


def _tables() -> dict[str, dict[str, list[str]]]:
    """`### title` -> {first cell: the other cells} for every table of the matrix section."""
    text = API_DOC.read_text()
    section = text.split("\n## Compatibility matrix\n", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, list[str]]] = {}
    title = ""
    for line in section.splitlines():
        if line.startswith("### "):
            title = re.sub(r"\s*\(.*\)$", "", line[4:]).strip()
            tables[title] = {}
        elif line.startswith("| ") and title and not line.startswith("| Field ") and not line.startswith("|---"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            assert cells[0] not in tables[title], f"{title}: row {cells[0]} twice"
            tables[title][cells[0]] = cells[1:]
    return tables


TABLES = _tables()


RAW_PARTS = "raw" in {kind.model_fields["type"].default for kind in get_args(get_args(ContentPart)[0])}
"""`RawPart` (a provider's own block, verbatim) comes with the Anthropic wire module of issue 13."""


def _request(table: str, fields: Fields) -> ChatRequest:
    values: Fields = {"messages": [Message(role="user", content="hi")], **fields}
    if not RAW_PARTS and '"raw"' in json.dumps(values, default=str):
        pytest.skip("this model has no RawPart yet")
    return ChatRequest.model_validate({"model": "public", "source": SOURCES[table], **values})


def test_matrix_has_every_table_and_a_sample_for_every_row() -> None:
    assert set(TABLES) >= {CHAT, MESSAGES, *RESPONSE_TABLES}
    documented = {(table, row) for table in (CHAT, MESSAGES) for row in TABLES[table]}
    assert documented - set(SAMPLES) == set(), "rows without a sample in this test"
    assert set(SAMPLES) - documented == set(), "samples without a row in docs/API.md"


@pytest.mark.parametrize("table", [CHAT, MESSAGES, *RESPONSE_TABLES])
def test_every_cell_is_a_known_verdict(table: str) -> None:
    for row, cells in TABLES[table].items():
        assert len(cells) == 2, f"{table}: {row}"
        for cell in cells:
            assert cell.startswith(VERDICTS), f"{table}: {row}: {cell!r}"
            if cell.startswith("refused"):
                assert cell.endswith("droppable"), f"{table}: {row}: every refusal is droppable"


@pytest.mark.parametrize(("table", "row"), sorted(SAMPLES))
def test_row_matches_unsupported_params(table: str, row: str) -> None:
    fields, param = SAMPLES[table, row]
    request = _request(table, fields)
    for provider, cell in zip(COLUMNS, TABLES[table][row], strict=True):
        found = unsupported_params(request, provider, "any-model")
        if cell.startswith("refused"):
            assert list(found) == [param], f"{row} to {provider.value}: {found}"
            why = re.search(r"\((.*)\)", cell)
            assert why is not None, f"{row}: a refusal says why"
        else:
            assert found == {}, f"{row} to {provider.value} is documented as {cell!r}, but {found}"


def _part_kinds(request: ChatRequest) -> set[str]:
    parts = [part for message in request.messages for part in message.content]
    nested = [item for part in parts if isinstance(part, ToolResultPart) for item in part.content]
    return {part.type for part in [*parts, *nested, *request.system]}


def test_samples_cover_every_field_and_part_kind_of_the_internal_model() -> None:
    requests = [_request(table, fields) for (table, _), (fields, _) in SAMPLES.items()
                if RAW_PARTS or '"raw"' not in json.dumps(fields, default=str)]
    set_fields = {name for request in requests for name in request.model_fields_set}
    unset = set(ChatRequest.model_fields) - set_fields - {"source"}  # the source is the table
    assert unset == set(), "fields of ChatRequest no matrix row shows"
    kinds = {kind for request in requests for kind in _part_kinds(request)}
    every_kind = {cls.model_fields["type"].default for cls in get_args(get_args(ContentPart)[0])}
    assert every_kind >= {"text", "image", "document", "audio", "tool_call", "tool_result", "thinking"}
    assert every_kind - kinds == set(), "content part kinds no matrix row shows"
    assert {"name", "refusal"} <= {name for request in requests for message in request.messages
                                   for name in message.model_fields_set}



def _wire_ready() -> bool:
    return all("drop" in inspect.signature(wire.render_request).parameters for wire in WIRES.values())


@pytest.mark.skipif(not _wire_ready(), reason="the wire modules predate the issue-13 contract")
@pytest.mark.parametrize(("table", "row"), sorted(SAMPLES))
def test_row_renders_as_routing_calls_it(table: str, row: str) -> None:
    """What `unsupported_params` accepts renders as is, and what it refuses renders once dropped: the calls
    routing makes (worker/routing.py) never fail in `render_request`."""
    fields, _ = SAMPLES[table, row]
    request = _request(table, fields)
    for provider in COLUMNS:
        found = unsupported_params(request, provider, "any-model")
        WIRES[provider].render_request(request, "any-model", drop=frozenset(found))


@pytest.mark.skipif(not _wire_ready(), reason="the wire modules predate the issue-13 contract")
@pytest.mark.parametrize(("table", "row"), sorted((table, row) for (table, row), (_, param) in SAMPLES.items()
                                                  if param is not None))
def test_render_request_refuses_what_is_unsupported_unless_dropped(table: str, row: str) -> None:
    """The safety net of the contract: `render_request` itself refuses a parameter its format cannot carry
    when it is not in `drop`, naming it as `unsupported_params` does."""
    fields, param = SAMPLES[table, row]
    request = _request(table, fields)
    for provider in COLUMNS:
        if param in unsupported_params(request, provider, "any-model"):
            with pytest.raises(UnsupportedParameter) as caught:
                WIRES[provider].render_request(request, "any-model")
            assert caught.value.param == param, f"{row} to {provider.value}"
