"""StreamTotals keeps every usage figure (the largest reported), the finish reason and the stop sequence."""

import pytest

from shared.errors import UpstreamUnavailable
from shared.models import Delta, FinishReason, Usage
from worker.providers._common import StreamTotals


def test_final_delta_keeps_stop_sequence_and_every_usage_field() -> None:
    totals = StreamTotals("anthropic")
    totals.add(Delta(usage=Usage(prompt_tokens=100, cached_prompt_tokens=10, cache_write_tokens=20,
                                 cache_write_1h_tokens=30, completion_tokens=1)))
    totals.add(Delta(text="hi"))
    totals.add(Delta(finish_reason=FinishReason.STOP_SEQUENCE, stop_sequence="###",
                     usage=Usage(completion_tokens=42, reasoning_tokens=12)))
    final = totals.final()
    assert final.finish_reason is FinishReason.STOP_SEQUENCE and final.stop_sequence == "###"
    assert final.usage == Usage(prompt_tokens=100, completion_tokens=42, cached_prompt_tokens=10,
                                cache_write_tokens=20, cache_write_1h_tokens=30, reasoning_tokens=12)
    assert (totals.prompt_tokens, totals.completion_tokens, totals.cached_prompt_tokens) == (100, 42, 10)


def test_a_stream_without_finish_was_cut_short() -> None:
    with pytest.raises(UpstreamUnavailable):
        StreamTotals("openai").final()


def test_openai_answer_fields_of_a_stream_reach_the_completion() -> None:
    """`system_fingerprint` and `service_tier` ride on every OpenAI chunk; the streamed answer keeps them, as a
    whole one does, so an OpenAI client's final chunk carries them."""
    from shared.wire.openai import StreamRenderer, parse_chunk
    from worker.stream_output import StreamOutput

    chunks = [{"choices": [{"index": 0, "delta": {"content": "Hi"}}], "system_fingerprint": "fp_1"},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "system_fingerprint": "fp_1",
               "service_tier": "default"},
              {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}, "system_fingerprint": "fp_1",
               "service_tier": "default"}]
    totals, output = StreamTotals("openai"), StreamOutput("openai")
    for chunk in chunks:
        for delta in parse_chunk(chunk):
            totals.add(delta)
            if delta.text:
                output.add(delta)
    output.add(totals.final())
    completion = output.completion("chatcmpl-1", "gpt-4o")
    assert (completion.system_fingerprint, completion.service_tier, completion.content) == ("fp_1", "default", "Hi")
    finish = StreamRenderer("chatcmpl-1", "gpt-4o", 1, include_usage=False).finish(completion)
    assert '"system_fingerprint":"fp_1"' in finish[-2][1] and '"service_tier":"default"' in finish[-2][1]
