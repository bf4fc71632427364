"""A provider call sent through the official SDK client's own `post`, with the JSON body encoded once here.

Why: the SDKs' resource methods (`chat.completions.create`, `messages.create`, `embeddings.create`, ...) run
a per-call parameter transform over their TypedDicts (`maybe_transform`) and, behind `with_raw_response` /
`with_streaming_response`, wrap the answer in a response object. The adapters already hold JSON-ready
arguments (`shared.wire` renders them) and read the raw body themselves, so both steps are pure cost: about a
quarter of the worker's CPU for one upstream call (docs/PERFORMANCE.md, "Issue 17: the upstream call").

The client's `post` still does everything else the SDK does for a request: base URL, the auth and version
headers, user agent and `x-stainless-*` headers, the client's timeout, and raising `APIStatusError`
subclasses, `APITimeoutError` and `APIConnectionError`. `client.post(path, cast_to=httpx.Response, ...)` is
the SDKs' documented way to call an endpoint they do not model; `cast_to=httpx2.Response` makes them return
the HTTP response as it is. `content=` (pre-encoded bytes) and the `security` option are parts of the same
signature that the pinned versions (constraints.txt) have; tests/worker/providers/test_sdk_post.py fails if
an SDK upgrade changes any of it.
"""

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import httpx2

__all__ = ["OPTION_ARGUMENTS", "Post", "encode_body", "post_json", "stream_json"]

Post = Callable[..., Awaitable[object]]
"""An SDK client's bound `post` (`AsyncOpenAI.post`, `AsyncAnthropic.post`); its overloads are per SDK."""

OPTION_ARGUMENTS = frozenset({"extra_body", "extra_headers"})
"""The keyword arguments of a resource method that are not body fields, and that `shared.wire` renders."""

UNSUPPORTED_ARGUMENTS = frozenset({"extra_query", "timeout"})
"""Resource-method options this path does not carry: a renderer producing one is a programming error."""


def encode_body(arguments: Mapping[str, object]) -> tuple[bytes, dict[str, str]]:
    """The request body and extra headers of a resource method's keyword arguments: the body fields, with
    `extra_body` merged over them (the SDK merges it last, so its keys win), encoded as the SDKs encode JSON
    (UTF-8, compact separators, NaN and infinity refused); `extra_headers` as the headers."""
    unsupported = UNSUPPORTED_ARGUMENTS.intersection(arguments)
    if unsupported:
        raise TypeError(f"arguments not carried by a pre-encoded call: {sorted(unsupported)}")
    body = {name: value for name, value in arguments.items() if name not in OPTION_ARGUMENTS}
    extra_body = arguments.get("extra_body")
    if isinstance(extra_body, Mapping):
        body.update(extra_body)
    extra_headers = arguments.get("extra_headers")
    headers = {str(name): str(value) for name, value in extra_headers.items()} \
        if isinstance(extra_headers, Mapping) else {}
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return content, headers


async def post_json(post: Post, path: str, arguments: Mapping[str, object], *,
                    security: Mapping[str, bool] | None = None, stream: bool = False) -> httpx2.Response:
    """POST `arguments` (a resource method's keyword arguments) to `path` through the SDK client's `post`.
    `security` is the resource method's own option (OpenAI's `{"bearer_auth": True}`), so the same auth
    headers go out. With `stream`, the body is left unread: the caller closes the response."""
    content, headers = encode_body(arguments)
    options: dict[str, object] = {"headers": headers} if headers else {}
    if security is not None:
        options["security"] = dict(security)
    response = await post(path, cast_to=httpx2.Response, content=content, options=options, stream=stream)
    if not isinstance(response, httpx2.Response):
        raise TypeError(f"the SDK's post returned {type(response).__name__}, not the HTTP response it was asked for")
    return response


@asynccontextmanager
async def stream_json(post: Post, path: str, arguments: Mapping[str, object], *,
                      security: Mapping[str, bool] | None = None) -> AsyncIterator[httpx2.Response]:
    """`post_json` with `stream`, closing the response however the caller's block ends (as the SDK's
    `with_streaming_response` context does)."""
    response = await post_json(post, path, arguments, security=security, stream=True)
    try:
        yield response
    finally:
        await response.aclose()
