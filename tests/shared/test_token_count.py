"""The tiktoken counter (shared/token_count.py, shared/tiktoken_files.py, shared/wire/openai_tokens.py):
encodings load from the packaged rank files with no network, known strings have their known token ids, and a
request is counted as OpenAI bills chat input (message overhead, names, tools, images, schemas)."""

import asyncio
import base64
import struct
import zlib
from pathlib import Path

import pytest
import tiktoken
from tiktoken.load import load_tiktoken_bpe

from shared.config import Settings
from shared.errors import InvalidRequest, ServiceUnavailable, UnsupportedParameter
from shared.image_size import image_size, image_size_of_base64
from shared.tiktoken_files import ENCODINGS, seed_cache, tiktoken_cache_dir
from shared.token_count import TokenCounter, encoding_name
from shared.wire.anthropic_count import parse_count_request
from shared.wire.openai_tokens import ImageRule, count_chat_input, image_tokens

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def _encoding(name: str) -> tiktoken.Encoding:
    return asyncio.run(TokenCounter().encoding(name, SETTINGS))


@pytest.fixture(scope="module")
def o200k() -> tiktoken.Encoding:
    return _encoding("o200k_base")


def png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize(("name", "text", "ids"), [
    ("o200k_base", "hello world", [24912, 2375]),
    ("cl100k_base", "hello world", [15339, 1917]),
])
def test_encoding_gives_known_ids_for_known_text(name: str, text: str, ids: list[int]) -> None:
    assert _encoding(name).encode(text) == ids


def test_seed_cache_writes_what_tiktoken_reads_under_its_own_key(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken finds the file by the SHA-1 of its URL and checks its SHA-256: a wrong key or content would make
    it download, which fails here (no network)."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert tiktoken_cache_dir(settings) == tmp_path
    for name, spec in ENCODINGS.items():
        path = seed_cache(name, tmp_path)
        assert path.parent == tmp_path
        ranks = load_tiktoken_bpe(spec.url, expected_hash=spec.sha256)
        assert len(ranks) > 100_000, name


def test_seed_cache_replaces_a_corrupt_file(tmp_path: Path) -> None:
    path = seed_cache("cl100k_base", tmp_path)
    path.write_bytes(b"not ranks")
    assert seed_cache("cl100k_base", tmp_path) == path
    assert path.stat().st_size > 1_000_000


def test_seed_cache_is_503_when_the_directory_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(ServiceUnavailable, match="cannot prepare"):
        seed_cache("o200k_base", blocker / "cache")


@pytest.mark.parametrize(("model", "name"), [
    ("gpt-4o", "o200k_base"), ("gpt-4.1-mini", "o200k_base"), ("gpt-4", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"), ("fake-model", "o200k_base"), ("text-davinci-003", "o200k_base"),
])
def test_encoding_name_follows_tiktoken_and_defaults_to_o200k(model: str, name: str) -> None:
    assert encoding_name(model) == name


def test_count_plain_messages_is_the_cookbook_formula(o200k: tiktoken.Encoding) -> None:
    request = {"messages": [{"role": "system", "content": "You are helpful."},
                            {"role": "user", "content": "Hello, world", "name": "ann"}]}
    expected = 3 + (3 + 1 + 4) + (3 + 1 + 3 + 1 + 1)  # priming; role + text per message; name + 1
    assert count_chat_input(request, o200k, "gpt-4o") == expected


def test_count_text_parts_sum_like_a_string(o200k: tiktoken.Encoding) -> None:
    as_string = {"messages": [{"role": "user", "content": "Hello, world"}]}
    as_parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello,"},
                                                         {"type": "text", "text": " world"}]}]}
    assert count_chat_input(as_parts, o200k, "gpt-4o") == count_chat_input(as_string, o200k, "gpt-4o")


def test_count_special_token_text_is_counted_not_refused(o200k: tiktoken.Encoding) -> None:
    request = {"messages": [{"role": "user", "content": "<|endoftext|>"}]}
    assert count_chat_input(request, o200k, "gpt-4o") > 7


def test_count_tools_follow_the_cookbook(o200k: tiktoken.Encoding) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather.",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string", "description": "City name"},
                                                 "unit": {"type": "string", "enum": ["c", "f"]}}}}}
    bare = {"messages": [{"role": "user", "content": "hi"}]}
    text = lambda value: len(o200k.encode(value))  # noqa: E731
    expected = 7 + text("get_weather:Get the weather") + 3 + 3 + text("city:string:City name") \
        + 3 + text("unit:string:") - 3 + 3 + text("c") + 3 + text("f") + 12
    assert count_chat_input({**bare, "tools": [tool]}, o200k, "gpt-4o") - count_chat_input(bare, o200k, "gpt-4o") \
        == expected


def test_count_tool_calls_and_results(o200k: tiktoken.Encoding) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    request = {"messages": [{"role": "assistant", "content": None, "tool_calls": [call]},
                            {"role": "tool", "tool_call_id": "c1", "content": "42"}]}
    text = lambda value: len(o200k.encode(value))  # noqa: E731
    expected = 3 + (3 + text("assistant") + text("f") + text('{"a":1}') + 3) + (3 + text("tool") + text("42"))
    assert count_chat_input(request, o200k, "gpt-4o") == expected


@pytest.mark.parametrize(("size", "detail", "rule", "tokens"), [
    ((1024, 1024), "high", ImageRule(), 85 + 170 * 4),     # OpenAI's worked example: 768x768, 4 tiles
    ((2048, 4096), "high", ImageRule(), 85 + 170 * 6),     # 1024x2048 -> 768x1536, 6 tiles
    ((4096, 8192), "low", ImageRule(), 85),
    ((1024, 1024), "auto", ImageRule(base=2833, tile=5667), 2833 + 5667 * 4),
    ((1024, 1024), "high", ImageRule(multiplier=1.62), 1659),  # 32x32 patches (1,024) x 1.62, rounded up
    ((1800, 2400), "high", ImageRule(multiplier=1.0), 1452),  # OpenAI's worked patch example, shrunk to fit
])
def test_image_tokens_follow_openai_rules(size: tuple[int, int], detail: str, rule: ImageRule, tokens: int) -> None:
    assert image_tokens(size, detail, rule) == tokens


def test_count_inline_image_reads_its_size(o200k: tiktoken.Encoding) -> None:
    small = base64.b64encode(png(100, 100)).decode()  # one tile
    request = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{small}"}}]}]}
    assert count_chat_input(request, o200k, "gpt-4o") == 3 + 3 + 1 + 85 + 170
    by_url = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}
    assert count_chat_input(by_url, o200k, "gpt-4o") == 3 + 3 + 1 + 85 + 170 * 8  # 2048x768 -> 1365x512


@pytest.mark.parametrize(("head", "size"), [
    (png(640, 480), (640, 480)),
    (b"GIF89a" + struct.pack("<HH", 33, 44) + b"\x00" * 4, (33, 44)),
    (jpeg(1920, 1080), (1920, 1080)),
    (b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (799).to_bytes(3, "little") + (599).to_bytes(3, "little"),
     (800, 600)),
    (b"not an image at all", None),
    (b"\xff\xd8\xff", None),
])
def test_image_size_reads_headers(head: bytes, size: tuple[int, int] | None) -> None:
    assert image_size(head) == size


def test_image_size_of_base64_ignores_bad_base64() -> None:
    assert image_size_of_base64("@@@@") is None
    assert image_size_of_base64(base64.b64encode(png(3, 4)).decode()) == (3, 4)


def test_counter_counts_an_anthropic_body_as_rendered_for_openai() -> None:
    chat = parse_count_request({"model": "m", "system": "Be brief.",
                                "messages": [{"role": "user", "content": "Hello, world"}]})
    count = asyncio.run(TokenCounter().count(chat, "gpt-4o", SETTINGS))
    assert count.counter == "tiktoken/o200k_base"
    assert count.input_tokens == 3 + (3 + 1 + 3) + (3 + 1 + 3)  # "Be brief." and "Hello, world": 3 tokens each


def test_counter_refuses_what_openai_cannot_take() -> None:
    chat = parse_count_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}]})
    with pytest.raises(UnsupportedParameter, match="mcp_servers"):
        asyncio.run(TokenCounter().count(chat, "gpt-4o", SETTINGS))
    assert asyncio.run(TokenCounter().count(chat, "gpt-4o", SETTINGS, drop=frozenset({"mcp_servers"}))).input_tokens


def test_parse_count_request_refuses_answer_fields_and_keeps_no_limit() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert parse_count_request(body).max_tokens is None
    for name, value in (("max_tokens", 5), ("stream", True), ("temperature", 0.5)):
        with pytest.raises(InvalidRequest, match=name):
            parse_count_request({**body, name: value})
