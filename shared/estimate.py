"""The prompt-token estimate admission charges a request before it runs (api/admission.py) and the worker bills
a stream closed before the provider reported usage (worker/jobs.py). Settlement corrects it to the provider's
count, so it is cheap and upper-leaning, never exact. It reads sizes only: a base64 payload is measured by its
length, never decoded or copied (a vision request carries several MB of them).

- text (system, messages, tool calls' names and arguments, tool results, thinking kept in the history, tool
  definitions with their JSON Schema): about 4 characters a token, plus 4 tokens a message;
- tools: `TOOLS_OVERHEAD_TOKENS` once when any are offered (Anthropic adds a tool-use system prompt of about
  350 tokens, OpenAI a comparable preamble), and `SERVER_TOOL_TOKENS` for each provider tool (Anthropic's
  computer-use tool costs about 735 tokens plus a ~500-token system prompt, the largest of them);
- images: `IMAGE_TOKENS` each, whatever their size or `detail`. Providers downscale a large image before
  counting it: Anthropic to about 1.15 megapixels (width x height / 750, about 1,600 tokens), OpenAI's
  gpt-4o at high detail to 2048x768 at most (85 + 170 a 512-px tile: 1,445). 1,600 covers both.
  (gpt-4o-mini counts image tokens ~33x higher at a ~17x lower price, so its dollars come out close);
- PDF documents: Anthropic reads each page as text and as an image, about 1,500 to 3,000 tokens a page
  (measured: a page of text ~2,350, a scanned page ~1,600). The page count is not read (that would mean
  decoding the PDF): `PDF_PAGE_TOKENS` for every `PDF_BYTES_PER_PAGE` of the decoded size, at least one
  page; a document by URL or file id, whose size is unknown, `UNKNOWN_PDF_PAGES` pages;
- plain-text documents: their characters (inline text, or the decoded size of base64 text);
- audio (OpenAI `input_audio`): about 10 tokens a second, and at most 16,000 bytes a second of compressed
  audio (mp3 at 128 kbit/s; wav at 16 kHz is 32,000): one token per `AUDIO_BYTES_PER_TOKEN` bytes."""

import json
import math

from shared.content import (
    AudioPart,
    ContentPart,
    DocumentPart,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from shared.models import ChatRequest

__all__ = [
    "AUDIO_BYTES_PER_TOKEN",
    "CHARS_PER_TOKEN",
    "IMAGE_TOKENS",
    "PDF_BYTES_PER_PAGE",
    "PDF_PAGE_TOKENS",
    "SERVER_TOOL_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOOLS_OVERHEAD_TOKENS",
    "UNKNOWN_PDF_PAGES",
    "estimate_prompt_tokens",
    "part_tokens",
]

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOOLS_OVERHEAD_TOKENS = 350
SERVER_TOOL_TOKENS = 1_250
IMAGE_TOKENS = 1_600
PDF_PAGE_TOKENS = 3_000
PDF_BYTES_PER_PAGE = 50_000
UNKNOWN_PDF_PAGES = 10
AUDIO_BYTES_PER_TOKEN = 1_600


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """The whole prompt's tokens, upper-leaning (see the module's docstring)."""
    chars = sum(len(part.text) for part in request.system)
    tokens = TOKENS_PER_MESSAGE * len(request.messages)
    for message in request.messages:
        chars += len(message.refusal or "")
        for part in message.content:
            part_chars, part_extra = _part_size(part)
            chars += part_chars
            tokens += part_extra
    if request.tools:
        tokens += TOOLS_OVERHEAD_TOKENS
        for tool in request.tools:
            chars += len(tool.name) + len(tool.description or "")
            if tool.parameters is not None:
                chars += len(json.dumps(tool.parameters, separators=(",", ":")))
            if tool.kind != "function":
                tokens += SERVER_TOOL_TOKENS + (len(json.dumps(tool.raw)) // CHARS_PER_TOKEN if tool.raw else 0)
    if request.output_format is not None and request.output_format.json_schema is not None:
        chars += len(json.dumps(request.output_format.json_schema, separators=(",", ":")))
    return math.ceil(chars / CHARS_PER_TOKEN) + tokens


def part_tokens(part: ContentPart) -> int:
    """One content part's estimated tokens."""
    chars, tokens = _part_size(part)
    return math.ceil(chars / CHARS_PER_TOKEN) + tokens


def _part_size(part: ContentPart) -> tuple[int, int]:
    """(characters of text, tokens counted otherwise) of one part."""
    if isinstance(part, TextPart):
        return len(part.text), 0
    if isinstance(part, ImagePart):
        return 0, IMAGE_TOKENS
    if isinstance(part, DocumentPart):
        return _document_size(part)
    if isinstance(part, AudioPart):
        return 0, math.ceil(_decoded_bytes(part.data) / AUDIO_BYTES_PER_TOKEN)
    if isinstance(part, ToolCallPart):
        return len(part.name) + len(part.arguments), 0
    if isinstance(part, ThinkingPart):
        return len(part.text) + len(part.redacted or ""), 0
    if isinstance(part, ToolResultPart):
        chars = tokens = 0
        for inner in part.content:
            inner_chars, inner_tokens = _part_size(inner)
            chars, tokens = chars + inner_chars, tokens + inner_tokens
        return chars, tokens
    return 0, 0


def _document_size(part: DocumentPart) -> tuple[int, int]:
    if part.text is not None:
        return len(part.text) + len(part.title or "") + len(part.context or ""), 0
    if part.data is None:  # by URL or file id: the size is unknown
        return 0, UNKNOWN_PDF_PAGES * PDF_PAGE_TOKENS
    size = _decoded_bytes(part.data)
    if part.media_type not in (None, "application/pdf"):  # text/plain and the like: about a character a byte
        return size, 0
    return 0, max(1, math.ceil(size / PDF_BYTES_PER_PAGE)) * PDF_PAGE_TOKENS


def _decoded_bytes(data: str) -> int:
    """The size base64 text decodes to, from its length alone (3 bytes per 4 characters)."""
    return len(data) * 3 // 4
