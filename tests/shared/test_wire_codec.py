"""shared.wire.codec: each codec is its wire module's client-facing side, chosen by `WireFormat`."""

from types import ModuleType

import pytest

from shared.errors import GatewayError, RateLimited, ServiceUnavailable, error_from_dict
from shared.models import Completion, Delta, WireFormat
from shared.wire import anthropic, openai
from shared.wire.codec import ANTHROPIC_CODEC, OPENAI_CODEC, WireCodec, codec_for

CODECS = [(OPENAI_CODEC, openai, WireFormat.OPENAI, "chatcmpl-"), (ANTHROPIC_CODEC, anthropic,
                                                                  WireFormat.ANTHROPIC, "msg_")]
BODIES = {WireFormat.OPENAI: {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
          WireFormat.ANTHROPIC: {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}}


def _completion() -> Completion:
    return Completion(id="x", model="m", provider="fake", content="hello")


@pytest.mark.parametrize(("codec", "module", "wire_format", "prefix"), CODECS)
def test_codec_for_returns_the_codec_of_its_format(codec: WireCodec, module: ModuleType, wire_format: WireFormat,
                                                   prefix: str) -> None:
    assert codec_for(wire_format) is codec
    assert codec.format is wire_format and codec.id_prefix == prefix


@pytest.mark.parametrize(("codec", "module", "wire_format", "prefix"), CODECS)
def test_codec_renders_as_its_wire_module(codec: WireCodec, module: ModuleType, wire_format: WireFormat,
                                          prefix: str) -> None:
    error = GatewayError("boom")
    assert codec.render_completion(_completion()) == module.render_completion(_completion())
    assert codec.render_error(error) == module.render_error(error)
    assert codec.parse_request(BODIES[wire_format], {}) == module.parse_request(BODIES[wire_format], {})


@pytest.mark.parametrize(("codec", "module", "wire_format", "prefix"), CODECS)
def test_codec_stream_renderer_emits_as_its_wire_module(codec: WireCodec, module: ModuleType,
                                                        wire_format: WireFormat, prefix: str) -> None:
    ours = codec.stream_renderer(f"{prefix}1", "m", 1, True)
    theirs = module.StreamRenderer(f"{prefix}1", "m", 1, True)
    assert ours.start(3) == theirs.start(3)
    assert ours.delta(Delta(content="hi")) == theirs.delta(Delta(content="hi"))
    assert ours.finish(_completion()) == theirs.finish(_completion())


def test_gateway_error_declares_retry_after_and_headers_with_defaults() -> None:
    error = GatewayError("boom")
    assert error.retry_after_s is None and error.headers == {}
    assert ServiceUnavailable("down").retry_after_s == 2.0


def test_error_from_dict_keeps_retry_after() -> None:
    rebuilt = error_from_dict(RateLimited("slow down", retry_after_s=3.0).to_dict())
    assert isinstance(rebuilt, RateLimited) and rebuilt.retry_after_s == 3.0 and rebuilt.headers == {}
