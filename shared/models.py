"""The one internal request/response model. Wire modules translate to and from it; routing, jobs and
providers only ever see these types, so a request in one wire format can be served by any provider."""

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "ChatRequest",
    "Completion",
    "Delta",
    "FinishReason",
    "JobStatus",
    "Message",
    "Role",
    "Usage",
    "WireFormat",
]

Role = Literal["user", "assistant"]


class FinishReason(StrEnum):
    """Why generation stopped, in the gateway's own vocabulary (mapped per wire format)."""

    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    TOOL_CALLS = "tool_calls"


class WireFormat(StrEnum):
    """The client-facing API flavour a request came in; decides how results and errors are rendered."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Message(BaseModel):
    """One conversation turn. System prompts are not messages here: they live in `ChatRequest.system`,
    because Anthropic takes them as a separate field and OpenAI as a leading message."""

    role: Role
    content: str


class ChatRequest(BaseModel):
    """A provider-neutral chat request. `model` is the public model name the client asked for."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] = Field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    user: str | None = None


class Usage(BaseModel):
    """Token counts of one answer. `prompt_tokens` is the whole input; `cached_prompt_tokens` is the part of
    it read from the provider's prompt cache (billed at the cheaper cached-input price)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(BaseModel):
    """A finished answer, with who actually served it (after any fallback)."""

    id: str
    model: str
    provider: str
    content: str
    finish_reason: FinishReason = FinishReason.STOP
    usage: Usage = Field(default_factory=Usage)
    created: int = 0


class Delta(BaseModel):
    """One streamed increment: text, and on the last delta the finish reason and/or usage."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
