"""OpenAI's legacy text completions wire format (`POST /v1/completions`) both ways: a client's body into
`TextCompletionRequest`, the provider call's keyword arguments, the provider's answer and stream chunks into
a `Completion` carrying a `TextCompletionOutput`, and the answer and `text_completion` chunks back out."""

from collections.abc import Mapping

from shared.endpoint import TextChoice, TextCompletionOutput
from shared.endpoint_requests import TextCompletionRequest
from shared.errors import InvalidRequest
from shared.models import Completion, Usage
from shared.wire._common import (
    INT64,
    get_int,
    get_list,
    get_mapping,
    get_str,
    invalid,
    optional_bool,
    optional_int,
    optional_str,
    string_list,
)
from shared.wire.openai_endpoints import forwarded, model_from, token_input

__all__ = ["parse_text_chunk", "parse_text_completion", "parse_text_completion_request", "render_text_choices",
           "render_text_completion", "render_text_completion_request"]

JSON = Mapping[str, object]
MODELLED_FIELDS = frozenset({
    "model", "prompt", "suffix", "echo", "logprobs", "max_tokens", "temperature", "top_p", "n", "best_of", "stop",
    "seed", "frequency_penalty", "presence_penalty", "logit_bias", "user", "stream", "stream_options",
})
NUMBERS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


def parse_text_completion_request(body: JSON) -> TextCompletionRequest:
    """Validate a client's completions body (a 400 naming the field); unknown fields go to `extra`."""
    options = _stream_options(body)
    fields: dict[str, object] = {
        "model": body.get("model"), "prompt": token_input(body.get("prompt"), "prompt"),
        "suffix": optional_str(body, "suffix"),
        "echo": None if body.get("echo") is None else optional_bool(body, "echo"),
        "logprobs": optional_int(body, "logprobs", minimum=0, maximum=5),
        "max_tokens": optional_int(body, "max_tokens", minimum=0), "n": optional_int(body, "n", maximum=128),
        "best_of": optional_int(body, "best_of", minimum=0, maximum=20),
        "seed": optional_int(body, "seed", minimum=INT64[0], maximum=INT64[1]),
        "stop": string_list(body.get("stop"), "stop", max_items=4),
        "logit_bias": body.get("logit_bias"), "user": optional_str(body, "user"),
        "stream": optional_bool(body, "stream"),
        "include_usage": optional_bool(options, "include_usage", "stream_options.include_usage"),
        "extra": {key: value for key, value in body.items() if key not in MODELLED_FIELDS},
        **{name: body.get(name) for name in NUMBERS},
    }
    if not isinstance(fields["model"], str) or not fields["model"]:
        raise invalid("model", "is required and must be a non-empty string")
    return model_from(TextCompletionRequest, fields)


def _stream_options(body: JSON) -> JSON:
    """`stream_options`: `include_usage` is its one field the gateway carries; any other is refused by name,
    never dropped."""
    options = body.get("stream_options")
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise invalid("stream_options", "must be an object")
    for key in options:
        if key != "include_usage":
            raise InvalidRequest(f"'stream_options.{key}' is not supported on /v1/completions by this gateway",
                                 code="unsupported_parameter")
    return options


def render_text_completion_request(request: TextCompletionRequest, model: str, *, stream: bool) -> dict[str, object]:
    """The SDK's `completions.create` arguments. A stream always asks for usage (what the job is billed); the
    client's `include_usage` decides only whether it sees the usage chunk."""
    fields = request.model_dump(exclude={"endpoint", "include_usage"})
    fields.update(model=model, stream=stream or None, stop=request.stop or None)
    kwargs = forwarded(fields)
    if stream:
        kwargs["stream_options"] = {"include_usage": True}
    return kwargs


def parse_text_completion(data: JSON, provider: str) -> Completion:
    """A provider's whole answer (or one stream chunk: the same shape, partial texts)."""
    choices = [TextChoice(index=get_int(choice, "index"), text=get_str(choice, "text"),
                          finish_reason=get_str(choice, "finish_reason") or None,
                          logprobs=dict(lp) if isinstance(lp := choice.get("logprobs"), Mapping) else None)
               for choice in get_list(data, "choices") if isinstance(choice, Mapping)]
    usage = get_mapping(data, "usage")
    fingerprint = data.get("system_fingerprint")
    return Completion(id=get_str(data, "id"), model=get_str(data, "model"), provider=provider, content="",
                      usage=Usage(prompt_tokens=get_int(usage, "prompt_tokens"),
                                  completion_tokens=get_int(usage, "completion_tokens")),
                      output=TextCompletionOutput(choices=choices,
                                                  system_fingerprint=fingerprint if isinstance(fingerprint, str)
                                                  else None))


parse_text_chunk = parse_text_completion


def render_text_completion(completion: Completion) -> dict[str, object]:
    output = completion.output if isinstance(completion.output, TextCompletionOutput) else None
    body: dict[str, object] = {
        "id": completion.id, "object": "text_completion", "created": completion.created, "model": completion.model,
        "choices": render_text_choices(output.choices if output else []),
        "usage": {"prompt_tokens": completion.usage.prompt_tokens,
                  "completion_tokens": completion.usage.completion_tokens,
                  "total_tokens": completion.usage.total_tokens},
    }
    if output is not None and output.system_fingerprint:
        body["system_fingerprint"] = output.system_fingerprint
    return body


def render_text_choices(choices: list[TextChoice]) -> list[dict[str, object]]:
    return [{"text": choice.text, "index": choice.index, "logprobs": choice.logprobs,
             "finish_reason": choice.finish_reason} for choice in choices]
