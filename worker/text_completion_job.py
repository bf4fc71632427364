"""The legacy text completions job: one `complete_text` call, or a stream whose chunks are appended to the
job's event stream as `token` events (`{"text", "index", "logprobs"?}`: one per choice piece) and folded into
the final answer, on the first target of the route that serves completions, falling back as chat does (a
stream only until its first chunk). Called by `worker.endpoint_jobs`."""

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
    """Relay the chunks; once one has reached the job's stream a failure is StreamInterrupted (no fallback:
    the client holds part of the answer)."""
    folded = _Fold()
    last: Completion | None = None
    try:
        async with aclosing(provider.stream_text(request, target)) as chunks:
            async for chunk in chunks:
                last = chunk
                for piece in folded.add(chunk):
                    await append_event(deps.redis, job_id, EventKind.TOKEN, piece,
                                       maxlen=deps.settings.event_stream_maxlen, ttl_s=deps.settings.job_ttl_s)
    except UpstreamError as error:
        if folded.started:
            raise StreamInterrupted(f"stream from {target.provider} failed: {error.message}") from error
        raise
    if last is None:
        raise GatewayError("the provider returned an empty stream")
    usage = folded.usage or Usage(prompt_tokens=estimate_input_tokens(request), completion_tokens=folded.pieces)
    return last.model_copy(update={"usage": usage, "output": folded.output(last)})


class _Fold:
    """The choices of a stream as they grow: text joined, logprobs lists extended, the last finish reason."""

    def __init__(self) -> None:
        self.choices: dict[int, TextChoice] = {}
        self.usage: Usage | None = None
        self.pieces = 0
        self.started = False

    def add(self, chunk: Completion) -> list[dict[str, object]]:
        """Fold one chunk in; returns the events to append (its non-empty pieces)."""
        if chunk.usage.prompt_tokens or chunk.usage.completion_tokens:
            self.usage = chunk.usage
        events: list[dict[str, object]] = []
        output = chunk.output if isinstance(chunk.output, TextCompletionOutput) else None
        for piece in output.choices if output else []:
            choice = self.choices.setdefault(piece.index, TextChoice(index=piece.index, text=""))
            choice.text += piece.text
            choice.finish_reason = piece.finish_reason or choice.finish_reason
            if piece.logprobs is not None:
                choice.logprobs = _extended(choice.logprobs, piece.logprobs)
            if piece.text or piece.logprobs:
                self.pieces += 1
                event: dict[str, object] = {"text": piece.text, "index": piece.index}
                if piece.logprobs is not None:
                    event["logprobs"] = piece.logprobs
                events.append(event)
        self.started = self.started or bool(events)
        return events

    def output(self, last: Completion) -> TextCompletionOutput:
        fingerprint = last.output.system_fingerprint if isinstance(last.output, TextCompletionOutput) else None
        return TextCompletionOutput(choices=[self.choices[index] for index in sorted(self.choices)],
                                    system_fingerprint=fingerprint)


def _extended(whole: dict[str, object] | None, piece: dict[str, object]) -> dict[str, object]:
    """OpenAI's legacy logprobs are parallel lists (tokens, token_logprobs, top_logprobs, text_offset)."""
    merged = dict(whole or {})
    for key, value in piece.items():
        before = merged.get(key)
        merged[key] = [*before, *value] if isinstance(before, list) and isinstance(value, list) else value
    return merged
