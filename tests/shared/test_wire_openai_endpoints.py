"""OpenAI's embeddings and legacy completions wire modules (shared/wire/openai_endpoints.py,
openai_embeddings.py, openai_text_completions.py): every field read and forwarded, unknown ones kept for the
provider, and every wrong value refused with a 400 naming its field, never converted or dropped."""

from typing import Any

import pytest

from shared.endpoint import EmbeddingOutput, TextChoice, TextCompletionOutput
from shared.endpoint_requests import EmbeddingRequest, TextCompletionRequest
from shared.errors import InvalidRequest
from shared.models import Completion, Usage
from shared.wire.openai_embeddings import (
    parse_embedding_request,
    parse_embedding_response,
    render_embedding_request,
    render_embeddings,
)
from shared.wire.openai_endpoints import MAX_INPUTS, forwarded, token_input
from shared.wire.openai_text_completions import (
    parse_text_completion,
    parse_text_completion_request,
    render_text_completion,
    render_text_completion_request,
)

EVERY_COMPLETION_FIELD: dict[str, Any] = {
    "model": "m", "prompt": ["a", "b"], "suffix": " end", "echo": True, "logprobs": 3, "max_tokens": 9,
    "temperature": 0.5, "top_p": 0.9, "n": 2, "best_of": 3, "stop": ["\n", "###"], "seed": -4,
    "frequency_penalty": 0.1, "presence_penalty": -0.2, "logit_bias": {"50256": -100}, "user": "u-1",
    "stream": True, "stream_options": {"include_usage": True}, "vendor_knob": {"x": 1},
}


@pytest.mark.parametrize("value", ["text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]],
                         ids=["string", "strings", "tokens", "token-arrays"])
def test_token_input_takes_each_shape(value: object) -> None:
    assert token_input(value, "input") == value


@pytest.mark.parametrize("value", ["", [], ["a", ""], ["a", 1], [[1], []], [True, 2], [-1], [[1], "a"], 5, None,
                                   {"text": "a"}],
                         ids=["empty-string", "empty-list", "empty-item", "mixed", "empty-array", "bool-token",
                              "negative-token", "array-and-text", "number", "missing", "object"])
def test_token_input_refuses_what_the_api_refuses(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^'input' "):
        token_input(value, "input")


def test_token_input_refuses_more_than_max_inputs() -> None:
    with pytest.raises(InvalidRequest, match=f"at most {MAX_INPUTS}"):
        token_input(["x"] * (MAX_INPUTS + 1), "input")


def test_forwarded_leaves_out_unset_fields_and_sends_unknown_ones_as_extra_body() -> None:
    assert forwarded({"a": 1, "b": None, "extra": {"k": 2}}) == {"a": 1, "extra_body": {"k": 2}}
    assert forwarded({"a": 0, "extra": {}}) == {"a": 0}


def test_embedding_request_reads_every_field_and_keeps_unknown_ones() -> None:
    request = parse_embedding_request({"model": "e", "input": ["x", "y"], "dimensions": 8,
                                       "encoding_format": "base64", "user": "u", "vendor": True})
    assert request == EmbeddingRequest(model="e", input=["x", "y"], dimensions=8, encoding_format="base64",
                                       user="u", extra={"vendor": True})
    assert render_embedding_request(request, "served") == {
        "model": "served", "input": ["x", "y"], "dimensions": 8, "encoding_format": "base64", "user": "u",
        "extra_body": {"vendor": True}}


def test_embedding_request_asks_for_float_when_the_client_did_not_say() -> None:
    request = parse_embedding_request({"model": "e", "input": "x"})
    assert render_embedding_request(request, "served") == {"model": "served", "input": "x",
                                                           "encoding_format": "float"}


@pytest.mark.parametrize(("body", "field"), [
    ({"input": "x"}, "'model'"), ({"model": "", "input": "x"}, "'model'"), ({"model": 3, "input": "x"}, "'model'"),
    ({"model": "e"}, "'input'"), ({"model": "e", "input": "x", "dimensions": 0}, "'dimensions'"),
    ({"model": "e", "input": "x", "dimensions": "8"}, "'dimensions'"),
    ({"model": "e", "input": "x", "encoding_format": "int8"}, "'encoding_format'"),
    ({"model": "e", "input": "x", "user": 7}, "'user'"),
])
def test_embedding_request_refuses_a_wrong_field_by_name(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_embedding_request(body)
    assert caught.value.status == 400 and caught.value.message.startswith(field)


def test_embedding_response_in_input_order_and_rendered_back() -> None:
    data = {"model": "text-embedding-3-small", "usage": {"prompt_tokens": 5, "total_tokens": 5},
            "data": [{"index": 1, "embedding": "AAAA"}, {"index": 0, "embedding": [0.5, 1]}]}
    completion = parse_embedding_response(data, "openai")
    assert completion.output == EmbeddingOutput(embeddings=[[0.5, 1.0], "AAAA"])
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 0)
    assert render_embeddings(completion) == {
        "object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 5, "total_tokens": 5},
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 1.0]},
                 {"object": "embedding", "index": 1, "embedding": "AAAA"}]}


def test_text_completion_request_reads_and_forwards_every_field() -> None:
    request = parse_text_completion_request(EVERY_COMPLETION_FIELD)
    assert request.include_usage is True and request.extra == {"vendor_knob": {"x": 1}}
    sent = render_text_completion_request(request, "served", stream=True)
    expected = {**EVERY_COMPLETION_FIELD, "model": "served", "extra_body": {"vendor_knob": {"x": 1}}}
    del expected["vendor_knob"]
    assert sent == expected


def test_text_completion_request_stream_always_asks_for_usage() -> None:
    request = parse_text_completion_request({"model": "m", "prompt": "p", "stream": True})
    assert request.include_usage is False
    assert render_text_completion_request(request, "s", stream=True) == {
        "model": "s", "prompt": "p", "stream": True, "stream_options": {"include_usage": True}}
    assert render_text_completion_request(request, "s", stream=False) == {"model": "s", "prompt": "p"}


def test_text_completion_request_takes_one_stop_string_and_false_echo() -> None:
    request = parse_text_completion_request({"model": "m", "prompt": [1, 2], "stop": "\n", "echo": False})
    assert request == TextCompletionRequest(model="m", prompt=[1, 2], stop=["\n"], echo=False)
    assert render_text_completion_request(request, "s", stream=False) == {
        "model": "s", "prompt": [1, 2], "stop": ["\n"], "echo": False}


@pytest.mark.parametrize(("extra", "field"), [
    ({"prompt": ""}, "'prompt'"), ({"model": None}, "'model'"), ({"echo": 1}, "'echo'"),
    ({"logprobs": 6}, "'logprobs'"), ({"max_tokens": -1}, "'max_tokens'"), ({"n": 0}, "'n'"),
    ({"best_of": 21}, "'best_of'"), ({"stop": ["a", "b", "c", "d", "e"]}, "'stop'"), ({"stop": 0}, "'stop'"),
    ({"stop": ""}, "'stop'"), ({"seed": "5"}, "'seed'"), ({"seed": True}, "'seed'"), ({"seed": 2**64}, "'seed'"),
    ({"temperature": "0.5"}, "'temperature'"), ({"temperature": True}, "'temperature'"),
    ({"temperature": 3}, "'temperature'"), ({"top_p": 1.5}, "'top_p'"),
    ({"presence_penalty": -3}, "'presence_penalty'"), ({"logit_bias": {"1": True}}, "'logit_bias.1'"),
    ({"logit_bias": []}, "'logit_bias'"), ({"suffix": 5}, "'suffix'"), ({"user": ["u"]}, "'user'"),
    ({"stream": "yes"}, "'stream'"), ({"stream_options": "usage"}, "'stream_options'"),
    ({"stream_options": {"include_usage": "yes"}}, "'stream_options.include_usage'"),
])
def test_text_completion_request_refuses_a_wrong_field_by_name(extra: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_text_completion_request({"model": "m", "prompt": "p", **extra})
    assert caught.value.status == 400 and caught.value.message.startswith(field), caught.value.message


def test_text_completion_request_refuses_an_unknown_stream_option_by_name() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_text_completion_request({"model": "m", "prompt": "p", "stream": True,
                                       "stream_options": {"include_usage": True, "include_obfuscation": False}})
    assert caught.value.code == "unsupported_parameter"
    assert "'stream_options.include_obfuscation'" in caught.value.message


def test_text_completion_answer_parsed_and_rendered_back() -> None:
    logprobs = {"tokens": ["a"], "token_logprobs": [-0.1], "top_logprobs": [{"a": -0.1}], "text_offset": [0]}
    data = {"id": "cmpl-up", "model": "gpt-3.5-turbo-instruct", "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "text": "a", "finish_reason": "length", "logprobs": logprobs},
                        {"index": 1, "text": "b", "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}}
    completion = parse_text_completion(data, "openai")
    assert completion.output == TextCompletionOutput(
        choices=[TextChoice(index=0, text="a", finish_reason="length", logprobs=logprobs),
                 TextChoice(index=1, text="b", finish_reason="stop")], system_fingerprint="fp_1")
    rendered = render_text_completion(completion.model_copy(update={"id": "cmpl-job", "created": 7}))
    assert rendered == {"id": "cmpl-job", "object": "text_completion", "created": 7,
                        "model": "gpt-3.5-turbo-instruct", "system_fingerprint": "fp_1",
                        "choices": [{"text": "a", "index": 0, "logprobs": logprobs, "finish_reason": "length"},
                                    {"text": "b", "index": 1, "logprobs": None, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}}


def test_text_completion_rendered_without_output_has_no_choices() -> None:
    completion = Completion(id="c", model="m", provider="openai", content="", usage=Usage())
    assert render_text_completion(completion)["choices"] == []
