"""What a target of each format can honour (shared/wire/capabilities.py): the rules the compatibility matrix
does not spell out row by row (reasons, part paths, several parts, matching drop names)."""

import pytest

from shared.content import (
    AudioPart,
    DocumentPart,
    ImagePart,
    Reasoning,
    TextPart,
    ThinkingPart,
    Tool,
    ToolResultPart,
)
from shared.models import ChatRequest, Message, WireFormat
from shared.routing_table import Target
from shared.wire.capabilities import (
    KNOWN_PARAMS,
    PROVIDER_FORMATS,
    drop_allowed,
    param_label,
    plan_target,
    provider_format,
    service_tier_for,
    unsupported_params,
)

OPENAI, ANTHROPIC = WireFormat.OPENAI, WireFormat.ANTHROPIC


def _request(source: WireFormat = OPENAI, **fields: object) -> ChatRequest:
    fields.setdefault("messages", [Message(role="user", content="hi")])
    return ChatRequest(model="m", source=source, **fields)  # type: ignore[arg-type]


def test_plain_request_reaches_both_formats_from_both_sources() -> None:
    for source in WireFormat:
        for provider in PROVIDER_FORMATS:
            assert unsupported_params(_request(source, max_tokens=5, temperature=0.5), provider, "x") == {}


def test_keys_are_the_clients_names() -> None:
    many = ["a", "b", "c", "d", "e"]
    assert list(unsupported_params(_request(ANTHROPIC, stop=many), OPENAI, "x")) == ["stop_sequences"]
    assert list(unsupported_params(_request(OPENAI, stop=many), OPENAI, "x")) == ["stop"]
    assert list(unsupported_params(_request(OPENAI, extra={"prediction": {}}), ANTHROPIC, "x")) == ["prediction"]


def test_extra_fields_reach_only_their_own_format() -> None:
    request = _request(ANTHROPIC, extra={"context_management": {"edits": []}, "container": "c1"})
    assert unsupported_params(request, ANTHROPIC, "x") == {}
    found = unsupported_params(request, OPENAI, "x")
    assert set(found) == {"context_management", "container"}
    assert "Anthropic Messages" in found["container"]


def test_parts_are_named_by_path_under_their_top_level_field() -> None:
    audio = AudioPart(data="AAAA", format="wav")
    request = _request(messages=[Message(role="user", content="hi"), Message(role="user", content=[audio])])
    assert unsupported_params(request, ANTHROPIC, "x") == {
        "messages": "messages[1].content[0] is audio, which Anthropic does not take"}
    assert unsupported_params(request, OPENAI, "x") == {}


def test_many_unsupported_parts_are_summarised() -> None:
    audio = AudioPart(data="AAAA", format="wav")
    request = _request(messages=[Message(role="user", content=[audio] * 5)])
    reason = unsupported_params(request, ANTHROPIC, "x")["messages"]
    assert reason.count("is audio") == 3 and reason.endswith("and 2 more")


@pytest.mark.parametrize(("detail", "refused"), [(None, False), ("auto", False), ("low", True), ("high", True)])
def test_image_detail_other_than_auto_is_unsupported_by_anthropic(detail: str | None, refused: bool) -> None:
    image = ImagePart(url="https://example.com/a.png", detail=detail)  # type: ignore[arg-type]
    request = _request(messages=[Message(role="user", content=[image])])
    assert ("messages" in unsupported_params(request, ANTHROPIC, "x")) is refused
    assert unsupported_params(request, OPENAI, "x") == {}


def test_image_media_types_anthropic_lacks() -> None:
    image = ImagePart(data="AAAA", media_type="image/heic")
    request = _request(messages=[Message(role="user", content=[image])])
    assert "image/heic" in unsupported_params(request, ANTHROPIC, "x")["messages"]


def test_file_ids_are_the_source_providers() -> None:
    document = DocumentPart(file_id="file-abc")
    for source in WireFormat:
        request = _request(source, messages=[Message(role="user", content=[document])])
        assert unsupported_params(request, source, "x") == {}
        other = ANTHROPIC if source is OPENAI else OPENAI
        assert "file id" in unsupported_params(request, other, "x")["messages"]


def test_thinking_from_another_provider_is_omitted_not_unsupported() -> None:
    thinking = ThinkingPart(text="hmm", signature="sig", provider="anthropic")
    request = _request(ANTHROPIC, messages=[Message(role="user", content="hi"),
                                            Message(role="assistant", content=[thinking, TextPart(text="ok")])])
    assert unsupported_params(request, OPENAI, "x") == {}


def test_tool_results_carry_images_to_openai_but_not_the_error_flag() -> None:
    image = ImagePart(data="AAAA", media_type="image/png")
    results = [ToolResultPart(tool_call_id="t1", content=[image]), ToolResultPart(tool_call_id="t2", is_error=True)]
    request = _request(ANTHROPIC, messages=[Message(role="user", content=results)])
    reason = "messages[0].content[1] is a tool result marked as an error: OpenAI tool messages have no error flag"
    assert unsupported_params(request, OPENAI, "x") == {"messages": reason}
    assert unsupported_params(request, ANTHROPIC, "x") == {}


def test_system_messages_with_images_cannot_reach_anthropic() -> None:
    image = ImagePart(url="https://example.com/a.png")
    request = _request(messages=[Message(role="developer", content=[TextPart(text="look"), image]),
                                 Message(role="user", content="hi")])
    assert "system message with image parts" in unsupported_params(request, ANTHROPIC, "x")["messages"]
    assert unsupported_params(request, OPENAI, "x") == {}


@pytest.mark.parametrize(("effort", "max_tokens", "refused"),
                         [("none", 10, False), ("low", 4096, False), ("low", 1024, True), ("ultra", None, True)])
def test_reasoning_effort_needs_room_for_an_anthropic_thinking_budget(effort: str, max_tokens: int | None,
                                                                      refused: bool) -> None:
    request = _request(reasoning=Reasoning(effort=effort), max_tokens=max_tokens)
    assert ("reasoning_effort" in unsupported_params(request, ANTHROPIC, "x")) is refused
    assert unsupported_params(request, OPENAI, "x") == {}


def test_server_tools_only_reach_their_provider() -> None:
    tool = Tool(kind="web_search_20250305", name="web_search", raw={"type": "web_search_20250305"})
    request = _request(ANTHROPIC, tools=[tool])
    assert unsupported_params(request, ANTHROPIC, "x") == {}
    assert "only Anthropic runs" in unsupported_params(request, OPENAI, "x")["tools"]
    assert unsupported_params(_request(ANTHROPIC, tools=[Tool(name="f", parameters={})]), OPENAI, "x") == {}


@pytest.mark.parametrize(("value", "anthropic", "openai"),
                         [("auto", "auto", "auto"), ("default", "standard_only", "default"),
                          ("priority", None, "priority"), ("flex", None, "flex")])
def test_service_tiers_translate_or_are_unsupported(value: str, anthropic: str | None, openai: str) -> None:
    assert service_tier_for(value, ANTHROPIC, OPENAI) == anthropic
    assert service_tier_for(value, OPENAI, OPENAI) == openai
    assert ("service_tier" in unsupported_params(_request(service_tier=value), ANTHROPIC, "x")) is (anthropic is None)
    assert service_tier_for("standard_only", OPENAI, ANTHROPIC) == "default"


def test_drop_names_match_any_vocabulary_and_star() -> None:
    assert drop_allowed("seed", {"seed"}, OPENAI)
    assert drop_allowed("anything", {"*"}, OPENAI)
    assert drop_allowed("stop_sequences", {"stop"}, ANTHROPIC)
    assert drop_allowed("stop", {"stop_sequences"}, OPENAI)
    assert drop_allowed("user", {"metadata.user_id"}, OPENAI)
    assert drop_allowed("reasoning_effort", {"thinking"}, OPENAI)
    assert not drop_allowed("seed", {"logit_bias"}, OPENAI)


def test_plan_target_drops_what_is_allowed_and_refuses_the_rest() -> None:
    target = Target(provider="anthropic", model="claude-x")
    request = _request(seed=1, logit_bias={"1": 2.0})
    assert plan_target(request, target, frozenset({"seed", "logit_bias"})).drop == {"seed", "logit_bias"}
    plan = plan_target(request, target, frozenset({"seed"}))
    assert plan.refused is not None and plan.refused[0] == "logit_bias" and plan.drop == frozenset()


def test_provider_format_and_metric_labels_are_closed() -> None:
    assert provider_format("openai") is OPENAI and provider_format("anthropic") is ANTHROPIC
    with pytest.raises(ValueError, match="cohere"):
        provider_format("cohere")
    assert param_label("seed") == "seed" and param_label("made_up_field_12345") == "other"
    assert {"seed", "top_k", "stop_sequences", "reasoning_effort", "thinking"} <= KNOWN_PARAMS
