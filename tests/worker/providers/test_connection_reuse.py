"""Each adapter keeps its upstream connections alive across calls, also with more calls in flight to one target
than the SDKs' default pool keeps idle (100): the connections are counted in the kernel's table
(/proc/net/tcp), on a fake upstream of this module's own, so no other test's sockets are counted."""

import asyncio
from pathlib import Path

import pytest

from shared.models import ChatRequest, Message, WireFormat
from shared.routing_table import Target
from worker.providers.anthropic import AnthropicProvider
from worker.providers.openai import OpenAIProvider

IN_FLIGHT = 120
"""More than the 100 idle connections the SDKs' default pool keeps."""
ESTABLISHED, TIME_WAIT = "01", "06"


def client_sockets(port: int) -> dict[str, int]:
    """This machine's IPv4 TCP sockets whose remote end is `port` (client sides), counted by state."""
    counts = {ESTABLISHED: 0, TIME_WAIT: 0}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] in counts:
            counts[fields[3]] += 1
    return counts


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_burst_above_the_sdk_default_pool_reuses_its_connections(fake_url: str, kind: str) -> None:
    port = int(fake_url.rsplit(":", 1)[1])
    if kind == "openai":
        provider: OpenAIProvider | AnthropicProvider = OpenAIProvider(
            api_key="k", base_url=f"{fake_url}/v1", timeout_s=30.0, api_key_lookup=lambda _: None)
    else:
        provider = AnthropicProvider(api_key="k", base_url=fake_url, timeout_s=30.0, api_key_lookup=lambda _: None)
    target = Target(provider=kind, model="fake-gpt" if kind == "openai" else "fake-claude")
    source = WireFormat.OPENAI if kind == "openai" else WireFormat.ANTHROPIC
    request = ChatRequest(model="m", messages=[Message(role="user", content="hi")], max_tokens=8, source=source)

    async def burst() -> None:
        completions = await asyncio.gather(*(provider.complete(request, target) for _ in range(IN_FLIGHT)))
        assert all(completion.usage.completion_tokens > 0 for completion in completions)

    try:
        await burst()
        opened = client_sockets(port)
        await burst()
        again = client_sockets(port)
    finally:
        await provider.aclose()
    assert opened[ESTABLISHED] == IN_FLIGHT  # every connection of the burst kept, none closed after use
    assert again == opened  # the second burst opened and closed nothing
