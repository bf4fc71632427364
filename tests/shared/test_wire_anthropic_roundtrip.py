"""Same provider, full fidelity: an Anthropic client's body -> `parse_request` -> `render_request` -> the
official SDK's `messages.create` reaches the upstream as the client sent it (unmodelled fields through
`extra_body`, `anthropic-beta` through `extra_headers`)."""

import base64

import pytest

from shared.wire import anthropic as wire
from tests.shared.wire_anthropic_support import normalise, sent_body

PNG = base64.b64encode(b"\x89PNG" * 100).decode()
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

CLAUDE_CODE: dict[str, object] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 32000,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Environment: linux", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>Today is Friday.</system-reminder>"},
            {"type": "text", "text": "Read README.md", "cache_control": {"type": "ephemeral"}},
        ]},
        {"role": "system", "content": [{"type": "text", "text": "The user switched to plan mode."}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should read it.", "signature": "EqQBCkYIBxgC"},
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"path": "README.md"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "no such file", "is_error": True,
             "cache_control": {"type": "ephemeral"}},
        ]},
    ],
    "tools": [
        {"name": "Read", "description": "Read a file", "input_schema": SCHEMA},
        {"name": "Bash", "description": "Run", "input_schema": {"type": "object", "properties": {}},
         "cache_control": {"type": "ephemeral"}},
    ],
    "thinking": {"type": "adaptive"},
    "output_config": {"effort": "high"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "metadata": {"user_id": '{"device_id":"abc","session_id":"s1"}'},
    "stream": True,
}
CLAUDE_CODE_BETAS = ("claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
                     "prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24")

EVERY_FIELD: dict[str, object] = {
    "model": "claude-opus-4-5",
    "max_tokens": 2000,
    "system": "Be brief.",
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Look", "citations": [{"type": "char_location", "cited_text": "L",
                                                            "document_index": 0, "start_char_index": 0,
                                                            "end_char_index": 1}]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG},
             "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "image", "source": {"type": "file", "file_id": "file_img"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PNG},
             "title": "Spec", "context": "ctx", "citations": {"enabled": True}, "cache_control": {"type": "ephemeral"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain text"}},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/d.pdf"}},
            {"type": "document", "source": {"type": "file", "file_id": "file_doc"}},
            {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "c"}]}},
            {"type": "search_result", "source": "https://s", "title": "S", "content": [{"type": "text", "text": "r"}]},
        ]},
        {"role": "assistant", "content": [
            {"type": "redacted_thinking", "data": "opaque=="},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "tool_use", "id": "toolu_2", "name": "get", "input": {}},
            {"type": "tool_use", "id": "toolu_3", "name": "get", "input": {"deep": {"a": [1, None, True]}}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_2"},
            {"type": "tool_result", "tool_use_id": "toolu_3", "content": [
                {"type": "text", "text": "img:", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}]},
        ]},
    ],
    "tools": [
        {"name": "get", "description": "Get", "input_schema": SCHEMA, "strict": True,
         "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "lazy", "input_schema": SCHEMA, "defer_loading": True, "input_examples": [{}]},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
        {"type": "bash_20250124", "name": "bash"},
    ],
    "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": True},
    "thinking": {"type": "enabled", "budget_tokens": 1024, "display": "summarized"},
    "output_config": {"effort": "medium", "format": {"type": "json_schema", "schema": SCHEMA}},
    "temperature": 0.3,
    "top_p": 0.9,
    "top_k": 40,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "u-7"},
    "service_tier": "auto",
    "container": "container_1",
    "mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "m"}],
    "cache_control": {"type": "ephemeral"},
    "inference_geo": "us",
    "speed": "fast",
}


def round_trip(body: dict[str, object], betas: str | None = None) -> tuple[dict[str, object], dict[str, str]]:
    request = wire.parse_request(body, {"anthropic-beta": betas} if betas else None)
    return sent_body(wire.render_request(request, str(body["model"])))


def test_claude_code_request_reaches_anthropic_unchanged() -> None:
    sent, headers = round_trip(CLAUDE_CODE, CLAUDE_CODE_BETAS)
    assert normalise(sent) == normalise(CLAUDE_CODE)
    assert headers["anthropic-beta"] == CLAUDE_CODE_BETAS
    assert sent["messages"][1] == CLAUDE_CODE["messages"][1]  # type: ignore[index]  # the system turn, in place


def test_every_field_reaches_anthropic_unchanged() -> None:
    sent, headers = round_trip(EVERY_FIELD, "files-api-2025-04-14")
    assert normalise(sent) == normalise(EVERY_FIELD)
    assert headers["anthropic-beta"] == "files-api-2025-04-14"


def test_the_base64_payload_is_passed_by_reference() -> None:
    request = wire.parse_request(EVERY_FIELD)
    kw = wire.render_request(request, "c")
    image = kw["messages"][0]["content"][1]  # type: ignore[index]
    assert image["source"]["data"] is EVERY_FIELD["messages"][0]["content"][1]["source"]["data"]  # type: ignore[index]


def test_beta_output_format_goes_back_in_its_own_shape() -> None:
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}],
            "output_format": {"type": "json_schema", "schema": SCHEMA}}
    sent, _ = round_trip(body, "structured-outputs-2025-11-13")
    assert sent == body


@pytest.mark.parametrize("thinking", [{"type": "disabled"}, {"type": "between_tools"},
                                      {"type": "adaptive", "display": "omitted"}])
def test_thinking_variants_go_back_as_sent(thinking: dict[str, object]) -> None:
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}], "thinking": thinking,
            "metadata": {"user_id": "u", "other": 1}, "output_config": {"effort": "low", "x": 1}}
    sent, headers = round_trip(body)
    assert sent == body
    assert "anthropic-beta" not in headers


def test_a_5_mb_image_is_checked_once_and_never_copied() -> None:
    import os

    data = base64.b64encode(os.urandom(5 * 1024 * 1024)).decode()
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}}]}]}
    request = wire.parse_request(body)
    image, document = request.messages[0].content
    assert image.data is data and document.data is data  # type: ignore[union-attr]
    kw = wire.render_request(request, "c")
    sources = [block["source"]["data"] for block in kw["messages"][0]["content"]]  # type: ignore[index]
    assert all(source is data for source in sources)
