"""A Responses client's own field names where the gateway names a parameter to it: a target's refusal
(`text.format`, not the Chat Completions `response_format` the field became), `x-gateway-drop-params` taking
either name, and the `include` values each Responses endpoint honours."""

import pytest

from shared.errors import InvalidRequest, UnsupportedParameter
from shared.routing_table import Target
from shared.wire.capabilities import plan_target
from shared.wire.responses import (
    INPUT_ITEM_INCLUDES,
    RESPONSE_INCLUDES,
    check_include,
    parse_responses_request,
    responses_param,
    responses_refusal,
)

ANTHROPIC = Target(provider="anthropic", model="claude-x")


@pytest.mark.parametrize(("chat_name", "responses_name"), [
    ("response_format", "text.format"), ("reasoning_effort", "reasoning.effort"),
    ("max_tokens", "max_output_tokens"), ("system", "instructions"), ("messages", "input"),
    ("top_p", "top_p"), ("service_tier", "service_tier"), ("tools", "tools"),
])
def test_responses_param_names_the_field_the_client_sent(chat_name: str, responses_name: str) -> None:
    assert responses_param(chat_name) == responses_name


@pytest.mark.parametrize(("fields", "named"), [
    ({"text": {"format": {"type": "json_object"}}}, "text.format"),
    ({"reasoning": {"effort": "high"}, "max_output_tokens": 1000}, "reasoning.effort"),
])
def test_responses_refusal_names_responses_field_and_drop_header_takes_it(fields: dict[str, object],
                                                                         named: str) -> None:
    chat = parse_responses_request({"model": "m", "input": "hi", **fields}).chat
    plan = plan_target(chat, ANTHROPIC, frozenset())
    assert plan.refused is not None
    refusal = responses_refusal(UnsupportedParameter(*plan.refused))
    assert refusal.param == named and f"'{named}' cannot be honoured" in refusal.message
    assert f"x-gateway-drop-params: {named}'" in refusal.message
    for allowed in (named, plan.refused[0]):  # the Responses name, and the Chat Completions one documented
        assert plan_target(chat, ANTHROPIC, frozenset({allowed})).refused is None


def test_check_include_honours_listed_values_and_refuses_others_by_name() -> None:
    check_include(["reasoning.encrypted_content", "message.input_image.image_url"], INPUT_ITEM_INCLUDES)
    check_include(["reasoning.encrypted_content"], RESPONSE_INCLUDES)
    for values, honoured in ((["message.input_image.image_url"], RESPONSE_INCLUDES),
                             (["file_search_call.results"], INPUT_ITEM_INCLUDES)):
        with pytest.raises(InvalidRequest) as refused:
            check_include(values, honoured)
        assert refused.value.message.startswith(f"'include' {values[0]!r} is not supported")
