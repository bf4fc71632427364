"""The official `openai` client against a gateway's Responses API, and the first half of a background
streamed response, for the end-to-end tests of resuming it (tests/e2e/test_responses_*.py)."""

from typing import Any

from openai import OpenAI


def responses_client(base_url: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30)


def stream_until_first_text(client: OpenAI, model: str) -> tuple[list[Any], int, str]:
    """Start a background streamed response and leave it at its first text delta, as a client that goes away
    mid-answer does (a background response runs on): (the events read, the last one's sequence number, the
    response's id)."""
    first: list[Any] = []
    with client.responses.create(model=model, input="A long answer", background=True, stream=True) as stream:
        for event in stream:
            first.append(event)
            if event.type == "response.output_text.delta":
                break
    return first, first[-1].sequence_number, first[0].response.id
