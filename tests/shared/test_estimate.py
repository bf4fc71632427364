"""shared.estimate: the prompt-token estimate counts text, tools and their schemas, images, documents and
audio, from sizes alone."""

import base64
import json

from shared.content import (
    AudioPart,
    DocumentPart,
    ImagePart,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
)
from shared.estimate import (
    IMAGE_TOKENS,
    PDF_PAGE_TOKENS,
    SERVER_TOOL_TOKENS,
    TOOLS_OVERHEAD_TOKENS,
    UNKNOWN_PDF_PAGES,
    estimate_prompt_tokens,
)
from shared.models import ChatRequest, Message


def _request(*parts: object, **fields: object) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role="user", content=list(parts) or "x" * 400)], **fields)


def test_plain_text_is_four_characters_a_token_plus_four_a_message() -> None:
    assert estimate_prompt_tokens(_request()) == 100 + 4
    assert estimate_prompt_tokens(_request(system="s" * 40)) == 10 + 100 + 4


def test_tools_count_their_schema_and_an_overhead() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "description": "x" * 200}}}
    tool = Tool(name="get_weather", description="d" * 40, parameters=schema)
    chars = len("get_weather") + 40 + len(json.dumps(schema, separators=(",", ":")))
    expected = -(-(400 + chars) // 4) + 4 + TOOLS_OVERHEAD_TOKENS
    assert estimate_prompt_tokens(_request(tools=[tool])) == expected
    server = Tool(kind="bash_20250124", name="bash", raw={"type": "bash_20250124", "name": "bash"})
    assert estimate_prompt_tokens(_request(tools=[server])) >= 100 + 4 + TOOLS_OVERHEAD_TOKENS + SERVER_TOOL_TOKENS


def test_images_are_a_fixed_conservative_count_whatever_their_size() -> None:
    small = ImagePart(data="aGVsbG8=", media_type="image/png")
    big = ImagePart(data="A" * 5_000_000, media_type="image/png")
    by_url = ImagePart(url="https://example.com/cat.png")
    for image in (small, big, by_url):
        assert estimate_prompt_tokens(_request(TextPart(text="what is this?"), image)) == 4 + 4 + IMAGE_TOKENS
    assert IMAGE_TOKENS >= 1_600  # Anthropic's ~1.15 MP image; OpenAI gpt-4o high detail is at most 1,445


def test_pdf_documents_by_decoded_size_text_documents_by_characters() -> None:
    pdf = DocumentPart(media_type="application/pdf", data="A" * 400_000)  # 300,000 bytes: 6 pages of 50 KB
    assert estimate_prompt_tokens(_request(pdf)) == 4 + 6 * PDF_PAGE_TOKENS
    tiny = DocumentPart(media_type="application/pdf", data="JVBERi0=")  # still at least one page
    assert estimate_prompt_tokens(_request(tiny)) == 4 + PDF_PAGE_TOKENS
    plain = DocumentPart(media_type="text/plain", data=base64.b64encode(b"y" * 3_996).decode())
    assert estimate_prompt_tokens(_request(plain)) == 4 + 999
    inline = DocumentPart(text="z" * 800)
    assert estimate_prompt_tokens(_request(inline)) == 4 + 200
    remote = DocumentPart(url="https://example.com/a.pdf")
    assert estimate_prompt_tokens(_request(remote)) == 4 + UNKNOWN_PDF_PAGES * PDF_PAGE_TOKENS


def test_audio_tool_calls_results_and_thinking_in_the_history() -> None:
    audio = AudioPart(data="A" * 64_000, format="mp3")  # 48,000 bytes: 3 s of 128 kbit/s mp3, ~30 tokens
    assert estimate_prompt_tokens(_request(audio)) == 4 + 30
    history = ChatRequest(model="m", messages=[
        Message(role="assistant", content=[ThinkingPart(text="t" * 40, signature="s"),
                                           ToolCallPart(id="c", name="f" * 4, arguments="a" * 36)]),
        Message(role="user", content=[ToolResultPart(tool_call_id="c", content=[
            TextPart(text="r" * 80), ImagePart(data="aGk=", media_type="image/png")])]),
    ])
    assert estimate_prompt_tokens(history) == (40 + 40 + 80) // 4 + 2 * 4 + IMAGE_TOKENS
