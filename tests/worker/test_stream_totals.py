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
