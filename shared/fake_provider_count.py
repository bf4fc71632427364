"""The fake provider's Anthropic token counting (`POST /v1/messages/count_tokens`): validation as Anthropic does
it (a Messages body without `max_tokens` or other answer-only fields) and a deterministic count, so tests can
tell its answer from the gateway's own tiktoken count. Used only by shared.fake_provider.

The count: `COUNT_BASE` (Anthropic's count includes its own framing), plus the words of the system prompt and
of every text block, plus `TOKENS_PER_MESSAGE` a message, plus the words of each tool's name, description and
schema JSON."""

import json

from shared.fake_provider_formats import JSON, Problem, common_problem, sse_data
from shared.fake_provider_script import content_text, count_words

__all__ = ["ANSWER_ONLY_FIELDS", "COUNT_BASE", "COUNT_TOKENS", "TOKENS_PER_MESSAGE"]

COUNT_BASE = 7
TOKENS_PER_MESSAGE = 2
ANSWER_ONLY_FIELDS = ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata")


class _CountTokens:
    """The `FakeEndpoint` shared.fake_provider serves at `/v1/messages/count_tokens`."""

    def problem(self, body: JSON) -> Problem | None:
        """What Anthropic would refuse in a count body, as (message, param); None for a good one."""
        if (problem := common_problem(body)) is not None:
            return problem
        for name in ANSWER_ONLY_FIELDS:
            if name in body:
                return f"{name}: Extra inputs are not permitted", name
        return None

    def answer(self, body: JSON, token_count: int) -> JSON:
        """`{"input_tokens": N}` for a valid body (see the module's docstring for N); `token_count`, the
        length of a reply, plays no part."""
        texts = [content_text(body.get("system"))]
        texts += [content_text(message.get("content")) for message in body["messages"]]
        tokens = COUNT_BASE + TOKENS_PER_MESSAGE * len(body["messages"]) + count_words(texts)
        for tool in body.get("tools") or []:
            if isinstance(tool, dict):
                described = [str(tool.get("name", "")), str(tool.get("description", "")),
                             json.dumps(tool.get("input_schema", {}), separators=(", ", ": "))]
                tokens += count_words(described)
        return {"input_tokens": tokens}

    def frames(self, body: JSON, token_count: int) -> list[str]:
        """Never called: `stream` is refused by `problem`, as Anthropic's endpoint does not stream."""
        return [sse_data(self.answer(body, token_count))]


COUNT_TOKENS = _CountTokens()
