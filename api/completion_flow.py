"""The request flow every completion route shares: read and parse the body with the route's wire codec,
submit (cache, limits, queue), then answer in the same wire format."""

from fastapi import Request, Response

from api.body import read_json_object
from api.deps import AppState
from api.request_context import request_context
from api.responses import respond
from api.shards import ShardHandles
from api.submit import submit
from shared.tenant_cache import TenantSnapshot
from shared.wire.codec import WireCodec


async def run_completion_request(request: Request, state: AppState, shard: ShardHandles, tenant: TenantSnapshot,
                                 codec: WireCodec, *,
                                 with_cost: bool = False) -> Response:
    body = await read_json_object(request, state.settings.max_body_bytes)
    chat = codec.parse_request(body, request.headers)  # headers: Anthropic's `anthropic-beta`
    submission = await submit(state, shard, request, tenant, chat, codec.format, body)
    # An error after this point (the job failed) still carries the rate-limit headers: see api.errors.
    request_context(request).headers = submission.headers
    return await respond(state, shard, request, tenant, chat, submission, codec, with_cost=with_cost)
