"""The sequence every completion route shares: check the model exists and that some target of its route can
honour the request, serve a cache hit or join an identical in-flight request, else admit the request against
the tenant's limits, record the job and enqueue it. The API never calls a provider; a worker picks the job
up."""

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fastapi import Request
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from api.admission import admit_request
from api.admission_hold import AdmissionHold, hold_admission
from api.deps import AppState
from api.request_context import request_context
from api.shards import ShardHandles
from shared.api_keys import check_model_access
from shared.attribution import Attribution, build_attribution
from shared.cache import CachedAnswer, cache_digest
from shared.endpoint import Endpoint
from shared.endpoint_requests import CountTokensRequest, JobRequest, endpoint_of
from shared.errors import InvalidRequest, ModelNotFound, RedisUnavailable, UnsupportedParameter
from shared.fair_queue import Priority, TenantShare, parse_priority
from shared.idempotency import Claim, IdempotencyStore, body_fingerprint, parse_key, route_flavour
from shared.jobs import JobOptions, JobRecord, new_record
from shared.keys import USAGE_STREAM
from shared.limits import Admission
from shared.metrics import CACHE_REQUESTS
from shared.models import ChatRequest, WireFormat
from shared.pending_writes import PendingWrites
from shared.routing_table import Target, parse_drop_params
from shared.tenant_cache import TenantSnapshot
from shared.wire.capabilities import Plan, plan_target

MAX_CACHE_TTL_S = 30 * 86_400
TTL_DIGITS = re.compile(r"[0-9]{1,10}")
DROP_HEADER = "x-gateway-drop-params"
DROPPED_HEADER = "x-gateway-dropped-params"


@dataclass
class Submission:
    """Where the answer will come from: a cache hit, or the events of a job (ours, or the identical
    request's we joined)."""

    job_id: str
    hit: CachedAnswer | None = None
    shared: bool = False
    replayed: bool = False  # a repeat of an Idempotency-Key: the first request's job, not admitted again
    headers: dict[str, str] = field(default_factory=dict)
    attribution: Attribution = field(default_factory=Attribution)  # whom the usage record bills (issue 15)


@dataclass(frozen=True)
class SubmitOptions:
    """What a route knows about its request beyond the parsed body. `idempotency_body` is what an
    Idempotency-Key's repeat must match when it differs from the cached body (a submitted job is never
    cached, but its repeat must still carry the same body); `priority` is the route's default scheduling
    class, which `X-Priority` overrides; `callback_url` is the job's validated webhook URL."""

    callback_url: str | None = None
    idempotency_body: Mapping[str, object] | None = None
    priority: Priority = Priority.INTERACTIVE


@dataclass(frozen=True)
class CachePolicy:
    """`digest` is None when the request is not cached at all; otherwise `read` says whether a stored or
    in-flight answer may serve it, and `ttl_s` how long its own answer is kept (0: not stored)."""

    digest: str | None
    read: bool
    ttl_s: int
    bypassed: bool = False  # `no-cache, no-store`: the cache is on but this request neither reads nor writes it


async def submit(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot, chat: JobRequest,
                 wire: WireFormat, body: dict[str, object] | None,
                 options: SubmitOptions = SubmitOptions()) -> Submission:
    """Run the whole submission; `body` is None for requests that are never cached (submitted jobs).
    With an `Idempotency-Key` (shared/idempotency.py), a repeat gets the first request's job without being
    admitted or billed again, and the request never reads the cache, so its key always names a job."""
    check_model_access(tenant, chat.model)  # before anything else: a model outside the scopes is never served
    claim = await _claim_idempotency_key(state, shard, http, tenant, options.idempotency_body or body or {})
    if claim is None:
        return await _submit(state, shard, http, tenant, chat, wire, body, options, read_cache=True)
    if claim.job_id is not None:
        _label(state, http, chat)
        return Submission(job_id=claim.job_id, replayed=True, headers={"idempotent-replayed": "true"})
    try:
        submission = await _submit(state, shard, http, tenant, chat, wire, body, options, read_cache=False)
    except BaseException:
        await asyncio.shield(claim.release())  # refused or failed before a job existed: a retry may reuse the key
        raise
    await claim.bind(submission.job_id)
    return submission


async def _claim_idempotency_key(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot,
                                 seen: Mapping[str, object]) -> Claim | None:
    key = parse_key(http.headers.get("idempotency-key"))
    if key is None:
        return None
    store = IdempotencyStore(shard.redis, ttl_s=min(state.settings.idempotency_ttl_s, state.settings.job_ttl_s))
    return await store.claim(tenant.id, route_flavour(http.url.path), key, body_fingerprint(seen))


async def _submit(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot, chat: JobRequest,
                  wire: WireFormat, body: dict[str, object] | None, options: SubmitOptions, *,
                  read_cache: bool) -> Submission:
    priority = requested_priority(http, options.priority)
    targets = _targets(state, chat)
    _label(state, http, chat)
    client_drops = requested_drop_params(http)
    # Before admission and the cache: a request no target can honour costs nothing and is never served.
    drop_headers = _check_parameters(state, chat, targets, client_drops)
    betas = chat.betas if isinstance(chat, ChatRequest) else []
    policy = _cache_policy(state, http, tenant, wire, body, client_drops, betas, endpoint_of(chat))
    policy = policy if read_cache else replace(policy, read=False)
    attribution = request_attribution(http, tenant, chat)  # over-limit tags are refused before admission
    try:
        reused = await _reuse(state, shard, tenant, chat, targets, policy, attribution)
        if reused is not None:
            return _with_headers(reused, drop_headers)
        job_id = f"job_{uuid.uuid4().hex}"
        # Every step from admission to the job's creation: on any way out without a job, what admission
        # took is given back (api/admission_hold.py).
        async with hold_admission(shard, job_id) as hold:
            submission = await _admit_and_create(state, shard, http, tenant, chat, wire, targets, policy, priority,
                                                 hold,
                                                 client_drops, options.callback_url, attribution)
            return _with_headers(submission, drop_headers)
    except RedisError as exc:
        raise RedisUnavailable() from exc


def request_attribution(http: Request, tenant: TenantSnapshot, chat: JobRequest) -> Attribution:
    """The key, end user and tags the request's usage record carries (shared/attribution.py)."""
    metadata = chat.metadata if isinstance(chat, ChatRequest) else None
    user = None if isinstance(chat, CountTokensRequest) else chat.user
    return build_attribution(http.headers, tenant.key_id, user, metadata)


def requested_drop_params(http: Request) -> list[str]:
    """`x-gateway-drop-params: seed, logit_bias` (or `*`): the parameters this client allows a target to
    leave out when it cannot honour them, instead of that target being skipped."""
    raw = http.headers.get(DROP_HEADER)
    if raw is None:
        return []
    names = [name.strip() for name in raw.split(",") if name.strip()]
    try:
        return parse_drop_params(names, DROP_HEADER)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def _check_parameters(state: AppState, chat: JobRequest, targets: list[Target],
                      client_drops: list[str]) -> dict[str, str]:
    """Refuse (400 `unsupported_parameter`) what no target of the route can honour with the drops allowed,
    naming the first target's first such parameter; else the `x-gateway-dropped-params` header naming what
    the first eligible target leaves out (a fallback's drops are in the job result and the usage record).
    A non-chat request needs a target that serves its endpoint (routes file `endpoints`)."""
    if not isinstance(chat, ChatRequest):
        _check_endpoint(chat.model, endpoint_of(chat), targets)
        return {}
    _, plan = first_eligible(state, chat, targets, client_drops)
    return {DROPPED_HEADER: ",".join(sorted(plan.drop))} if plan.drop else {}


def first_eligible(state: AppState, chat: ChatRequest, targets: list[Target],
                   client_drops: list[str]) -> tuple[Target, Plan]:
    """The target a chat request would go to first, and what it would leave out, with the drops the route
    and the client allow; none: the 400 that request gets, naming the first target's first parameter it
    cannot honour. Submission and token counting (api/routes/count_tokens.py) both pick with it."""
    allowed = state.routing_table.drop_params_for(chat.model) | frozenset(client_drops)
    refused: tuple[str, str] | None = None
    for target in targets:
        plan = plan_target(chat, target, allowed)
        if plan.refused is None:
            return target, plan
        refused = refused or plan.refused
    raise UnsupportedParameter(*(refused or ("model", "its route has no target")))


def _check_endpoint(model: str, endpoint: Endpoint, targets: list[Target]) -> None:
    if any(target.serves(endpoint) for target in targets):
        return
    served = sorted({kind.value for target in targets for kind in target.endpoints})
    raise InvalidRequest(f"The model '{model}' cannot serve {endpoint.value}: no target of its route has that "
                         f"endpoint (its targets serve: {', '.join(served)}; a routes file target lists what it "
                         f"serves in 'endpoints')", code="unsupported_endpoint")


def _with_headers(submission: Submission, headers: dict[str, str]) -> Submission:
    if headers:
        submission.headers = {**submission.headers, **headers}
    return submission


async def _admit_and_create(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot,
                            chat: JobRequest,
                            wire: WireFormat, targets: list[Target], policy: CachePolicy, priority: Priority,
                            hold: AdmissionHold, client_drops: list[str], callback_url: str | None,
                            attribution: Attribution) -> Submission:
    job_id = hold.job_id
    options = _JobOptionsOf(http, tenant, policy, priority, client_drops, callback_url, attribution)
    share = TenantShare(weight=tenant.weight or 1, max_running=tenant.max_running or 0)
    cache_header = {"x-cache": "MISS"} if policy.digest or policy.bypassed else {}
    if policy.digest is None or not policy.ttl_s or not policy.read:
        # Nothing to claim between admission and creation: the admission script creates the job itself.
        def creation(admission: Admission) -> PendingWrites:
            record = new_record(job_id, tenant.id, chat, wire, options.of(admission, leads=False))
            return PendingWrites.record(shard.redis, lambda pipe: _write_job(shard, pipe, record, share))

        _, headers = await admit_request(state, shard, tenant, chat, targets, job_id, full=True,
                                         priority=priority, create=creation)
        return Submission(job_id=job_id, headers={**headers, **cache_header}, attribution=attribution)
    admission, headers = await admit_request(state, shard, tenant, chat, targets, job_id, full=True, priority=priority,
                                             hold=hold)
    hold.lead(policy.digest)
    leader = await shard.cache.claim(policy.digest, job_id, state.settings.request_timeout_s)
    if leader is not None:  # an identical request got there first: follow it (the hold frees our admission)
        await shard.store.add_follower(leader)
        return Submission(job_id=leader, shared=True, headers={**headers, "x-cache": "MISS"},
                          attribution=attribution)
    # The record and its queue entry in one transaction: a job is never recorded but not queued.
    await shard.store.create(job_id, tenant.id, chat, wire, options.of(admission, leads=True),
                             enqueue=lambda pipe, record: shard.queue.enqueue_on(pipe, record, share=share))
    hold.hand_over()
    return Submission(job_id=job_id, headers={**headers, **cache_header}, attribution=attribution)


def _write_job(shard: ShardHandles, pipe: Pipeline, record: JobRecord, share: TenantShare) -> None:
    shard.store.write_on(pipe, record)
    shard.queue.enqueue_on(pipe, record, share=share)


@dataclass(frozen=True)
class _JobOptionsOf:
    """What a job's options are made of besides its admission (known before it)."""

    http: Request
    tenant: TenantSnapshot
    policy: CachePolicy
    priority: Priority
    client_drops: list[str]
    callback_url: str | None
    attribution: Attribution

    def of(self, admission: Admission | None, *, leads: bool) -> JobOptions:
        policy = self.policy
        return JobOptions(cache_digest=policy.digest if policy.ttl_s else None, cache_ttl_s=policy.ttl_s,
                          cache_leader=leads, admission=admission,
                          request_id=request_context(self.http).request_id, callback_url=self.callback_url,
                          priority=self.priority, drop_params=self.client_drops,
                          content_days=self.tenant.log_content_days or 0, **self.attribution.model_dump())


async def record_cache_hit(shard: ShardHandles, tenant: TenantSnapshot, chat: JobRequest, answer: CachedAnswer,
                           attribution: Attribution, *, status: str = "succeeded") -> None:
    """A usage record for an answer served without calling a provider: free, with the cost it saved."""
    usage = answer.completion.usage
    row = {
        "request_id": f"hit_{uuid.uuid4().hex}", "tenant_id": tenant.id, "public_model": chat.model,
        "provider": answer.completion.provider, "model": answer.completion.model,
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "cost_usd": 0.0, "saved_cost_usd": answer.cost_usd, "latency_ms": 0, "status": status,
        "cache_hit": True, "fallback_used": False, "created_at": time.time(),
        "dropped_params": ",".join(answer.completion.dropped_params), "endpoint": endpoint_of(chat).value,
        **attribution.model_dump(),
    }
    await shard.redis.xadd(USAGE_STREAM, {"row": json.dumps(row)}, maxlen=1_000_000, approximate=True)


def requested_priority(http: Request, default: Priority) -> Priority:
    """The job's scheduling class: `X-Priority: interactive|batch`, else the route's default."""
    priority = parse_priority(http.headers.get("x-priority"), default)
    if priority is None:
        raise InvalidRequest("X-Priority must be 'interactive' or 'batch'")
    return priority


def _label(state: AppState, http: Request, chat: JobRequest) -> None:
    """The request's metric labels: the model as a label (configured names only, else "other")."""
    context = request_context(http)
    context.model, context.stream = state.metric_labels.model(chat.model), chat.stream


def _targets(state: AppState, chat: JobRequest) -> list[Target]:
    targets = state.routing_table.targets_for(chat.model)
    if not targets:
        raise ModelNotFound(f"The model '{chat.model}' does not exist or is not routed by this gateway")
    return targets


def _cache_policy(state: AppState, http: Request, tenant: TenantSnapshot, wire: WireFormat,
                  body: dict[str, object] | None, client_drops: list[str], betas: list[str],
                  endpoint: Endpoint) -> CachePolicy:
    """`Cache-Control: no-cache` skips the read, `no-store` the write; `x-cache-ttl` sets this entry's TTL.
    Two headers that change the answer are part of the key besides the body: the drops a client allows (an
    answer made without its `seed` never serves a client that did not allow dropping it) and the
    `anthropic-beta` features it enabled."""
    ttl_s = _requested_ttl(http.headers.get("x-cache-ttl"), state.settings.cache_ttl)
    if body is None or ttl_s == 0:
        return CachePolicy(digest=None, read=False, ttl_s=0)
    directives = {d.strip().lower() for d in http.headers.get("cache-control", "").split(",")}
    if {"no-cache", "no-store"} <= directives:
        # No key needed: hashing a body of several MB (an image) costs more than the rest of the request.
        return CachePolicy(digest=None, read=False, ttl_s=0, bypassed=True)
    return CachePolicy(
        digest=_with_headers_keyed(cache_digest(tenant.id, wire, body, endpoint), client_drops, betas),
        read="no-cache" not in directives,
        ttl_s=0 if "no-store" in directives else ttl_s,
    )


def _with_headers_keyed(digest: str, client_drops: list[str], betas: list[str]) -> str:
    if not client_drops and not betas:
        return digest
    keyed = f"{digest}\n{','.join(client_drops)}\n{','.join(sorted(betas))}"
    return hashlib.sha256(keyed.encode()).hexdigest()


def _requested_ttl(raw: str | None, default_s: int) -> int:
    """ASCII digits only: str.isdigit() also takes '²' or Arabic-Indic digits."""
    if raw is None:
        return default_s
    digits = raw.strip()
    if not TTL_DIGITS.fullmatch(digits) or int(digits) > MAX_CACHE_TTL_S:
        raise InvalidRequest(f"x-cache-ttl must be a whole number of seconds from 0 to {MAX_CACHE_TTL_S}")
    return int(digits)


async def _reuse(state: AppState, shard: ShardHandles, tenant: TenantSnapshot, chat: JobRequest, targets: list[Target],
                 policy: CachePolicy, attribution: Attribution) -> Submission | None:
    """A stored answer, or the job of an identical request in flight; either costs one request, no more."""
    if policy.digest is None or not policy.read:
        return None
    hit = await shard.cache.get(policy.digest)
    CACHE_REQUESTS.labels(tenant.id, "hit" if hit is not None else "miss", endpoint_of(chat)).inc()
    leader = None if hit is not None else await shard.cache.leader(policy.digest)
    if hit is None and leader is None:
        return None
    _, headers = await admit_request(state, shard, tenant, chat, targets, f"hit_{uuid.uuid4().hex}", full=False)
    if hit is not None:
        await record_cache_hit(shard, tenant, chat, hit, attribution)
        return Submission(job_id="", hit=hit, headers={**headers, "x-cache": "HIT"}, attribution=attribution)
    await shard.store.add_follower(str(leader))
    return Submission(job_id=str(leader), shared=True, headers={**headers, "x-cache": "MISS"},
                      attribution=attribution)
