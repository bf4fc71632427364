"""The legacy text completions job: one `complete_text` call, or a stream whose chunks are folded into the
final answer and appended to the job's event stream as `token` events (`{"text", "index", "logprobs"?}`: a
choice's pieces coalesced as a chat stream's are, within FLUSH_INTERVAL_S or FLUSH_MAX_CHARS,
worker/stream_output.py), on the first target of the route that serves completions, falling back as chat does
(a stream only until its first output is appended). Called by `worker.endpoint_jobs`."""

import time
from contextlib import aclosing

from shared.endpoint import Endpoint, TextChoice, TextCompletionOutput
from shared.endpoint_requests import TextCompletionRequest, estimate_input_tokens
from shared.errors import GatewayError, ProviderNotConfigured, StreamInterrupted, UpstreamError
from shared.jobs import JobRecord
from shared.models import Completion, Usage
from shared.routing_table import Target
from shared.streams import EventKind, append_event
from worker.deps import WorkerDeps
from worker.providers.base import Provider, TextCompletionProvider
from worker.routing import Served
from worker.stream_output import FLUSH_INTERVAL_S, FLUSH_MAX_CHARS


async def run_text_completion(deps: WorkerDeps, record: JobRecord,
                              targets: list[Target]) -> tuple[Completion, Served]:
    request = record.request
    if not isinstance(request, TextCompletionRequest):
        raise GatewayError("internal error: a completions job without a completions request")

    async def invoke(provider: Provider, target: Target) -> Completion:
        if not isinstance(provider, TextCompletionProvider):  # the routes file refuses such a target: a bug
            raise ProviderNotConfigured(f"the {target.provider} adapter has no text completions")
        if not request.stream:
            return await provider.complete_text(request, target)
        return await _streamed(deps, record.id, request, provider, target)

    return await deps.router.call(targets, invoke, refuse=lambda target: target.refusal(Endpoint.COMPLETIONS))


async def _streamed(deps: WorkerDeps, job_id: str, request: TextCompletionRequest,
                    provider: TextCompletionProvider, target: Target) -> Completion:
    """Relay the chunks, coalesced; once output has reached the job's stream a failure is StreamInterrupted
    (no fallback: the client holds part of the answer)."""
    folded = _Fold()
    last: Completion | None = None
    last_flush = float("-inf")  # the first output goes out at once
    try:
        async with aclosing(provider.stream_text(request, target)) as chunks:
            async for chunk in chunks:
                last = chunk
                folded.add(chunk)
                now = time.monotonic()
                if folded.pending and (now - last_flush >= FLUSH_INTERVAL_S
                                       or folded.pending_chars >= FLUSH_MAX_CHARS):
                    await _append(deps, job_id, folded.flush())
                    last_flush = now
    except UpstreamError as error:
        if folded.started:
            raise StreamInterrupted(f"stream from {target.provider} failed: {error.message}") from error
        raise
    if last is None:
        raise GatewayError("the provider returned an empty stream")
    await _append(deps, job_id, folded.flush())
    usage = folded.usage or Usage(prompt_tokens=estimate_input_tokens(request), completion_tokens=folded.pieces)
    return last.model_copy(update={"usage": usage, "output": folded.output(last)})


async def _append(deps: WorkerDeps, job_id: str, events: list[dict[str, object]]) -> None:
    for event in events:
        await append_event(deps.redis, job_id, EventKind.TOKEN, event, maxlen=deps.settings.event_stream_maxlen,
                           ttl_s=deps.settings.job_ttl_s)


class _Fold:
    """The choices of a stream as they grow (text joined, logprobs lists extended, the last finish reason),
    and the output not yet appended: per choice, its pieces since the last flush, joined the same way."""

    def __init__(self) -> None:
        self.choices: dict[int, TextChoice] = {}
        self.usage: Usage | None = None
        self.pieces = 0
        self.pending_chars = 0
        self.started = False  # some output was appended: a failure can no longer fall back
        self._pending: dict[int, dict[str, object]] = {}  # choice index -> its coalesced event, in arrival order

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def add(self, chunk: Completion) -> None:
        if chunk.usage.prompt_tokens or chunk.usage.completion_tokens:
            self.usage = chunk.usage
        output = chunk.output if isinstance(chunk.output, TextCompletionOutput) else None
        for piece in output.choices if output else []:
            choice = self.choices.setdefault(piece.index, TextChoice(index=piece.index, text=""))
            choice.text += piece.text
            choice.finish_reason = piece.finish_reason or choice.finish_reason
            if piece.logprobs is not None:
                choice.logprobs = _extended(choice.logprobs, piece.logprobs)
            if piece.text or piece.logprobs:
                self.pieces += 1
                self._hold(piece)

    def flush(self) -> list[dict[str, object]]:
        """The pending events (one per choice with output since the last flush), which then start afresh."""
        events = list(self._pending.values())
        self._pending, self.pending_chars = {}, 0
        self.started = self.started or bool(events)
        return events

    def output(self, last: Completion) -> TextCompletionOutput:
        fingerprint = last.output.system_fingerprint if isinstance(last.output, TextCompletionOutput) else None
        return TextCompletionOutput(choices=[self.choices[index] for index in sorted(self.choices)],
                                    system_fingerprint=fingerprint)

    def _hold(self, piece: TextChoice) -> None:
        event = self._pending.setdefault(piece.index, {"text": "", "index": piece.index})
        event["text"] = f"{event['text']}{piece.text}"
        self.pending_chars += len(piece.text)
        if piece.logprobs is not None:
            before = event.get("logprobs")
            event["logprobs"] = _extended(before if isinstance(before, dict) else None, piece.logprobs)


def _extended(whole: dict[str, object] | None, piece: dict[str, object]) -> dict[str, object]:
    """OpenAI's legacy logprobs are parallel lists (tokens, token_logprobs, top_logprobs, text_offset)."""
    merged = dict(whole or {})
    for key, value in piece.items():
        before = merged.get(key)
        merged[key] = [*before, *value] if isinstance(before, list) and isinstance(value, list) else value
    return merged
