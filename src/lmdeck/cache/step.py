"""The exact cache step (phase ``cache``): answer a repeated request from the stored answer.

On each request to a route whose cache is enabled (``cache.enabled``, per route or globally)
the step reads the client's ``x-lmdeck-cache`` header:

``(absent)``
    look up the exact key; a hit replays the stored answer, a miss asks the upstream and keeps
    its answer when it completed whole;
``bypass``
    neither look up nor keep: the upstream answers;
``refresh``
    do not look up, but keep the upstream's answer (replacing the stored one);
``only-if-cached``
    a hit replays, a miss answers 504 (``code: cache_miss``) without calling the upstream.

Any other value is refused with a 400 naming the header. The response carries
``x-lmdeck-cache: hit | miss | bypass`` and, on a hit, ``age`` (whole seconds since the answer
was stored). A hit is traced with ``cache_hit``, ``cache="exact"``, ``cache_source_id`` (the
trace that paid for the answer), cost 0 and ``saved_tokens``/``saved_micros``: the original's
tokens and cost.

Only deterministic requests are cached: a chat or text completion must set ``temperature: 0``
unless the route sets ``cache.allow_sampled`` (a request that leaves temperature out gets the
upstream's default, 1 at OpenAI). Only answers that completed are kept: a failed request, an
answer refused by an output guardrail (raised inside this step) and a stream that was cut or
ended without a finish reason leave no entry::

    step = ExactCache(store, settings.cache, route_config)
    StepDeclaration(step, "cache")          # in lmdeck.cache.steps
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from lmdeck.cache.base import CacheStore
from lmdeck.cache.entry import CacheEntry
from lmdeck.cache.keys import CACHE_VARY, cache_key, cache_scope
from lmdeck.cache.replay import assemble, replay
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Slot, Streamed
from lmdeck.policy.cost import USAGE
from lmdeck.protocol import APIError
from lmdeck.protocol.wire import wire_dict
from lmdeck.settings import CacheConfig, CacheSettings, RouteConfig

#: The request header choosing how the cache is used, and the response header saying what it did.
CACHE_HEADER = "x-lmdeck-cache"
#: Seconds since a replayed answer was stored (HTTP's ``Age``).
AGE_HEADER = "age"

Mode = Literal["lookup", "bypass", "refresh", "only-if-cached"]

RouteConfigs = Callable[[str], RouteConfig | None]
#: Keeps an entry: in memory at once; a store persists off the request path.
Put = Callable[[CacheEntry], Awaitable[None]]


@dataclass(frozen=True)
class CacheRequest:
    """What the cache steps decided for one request; the semantic step reads it from :data:`CACHE_REQUEST`.

    ``key`` is the exact key and ``scope`` the tenant (:mod:`lmdeck.cache.keys`); ``config`` the
    route's resolved cache config; ``cacheable`` False (with ``reason``) when the request may not be
    cached (sampled without ``allow_sampled``); ``vary`` the extra key parts the key was made with
    (:data:`~lmdeck.cache.keys.CACHE_VARY`), which the semantic shape uses too.
    """

    mode: Mode
    config: CacheConfig
    scope: str
    key: str
    cacheable: bool
    reason: str | None = None
    vary: dict[str, str] | None = None


CACHE_REQUEST: Slot[CacheRequest] = Slot("cache.request")


def request_mode(ctx: RequestContext) -> Mode:
    """The client's ``x-lmdeck-cache`` value; raises a 400 (``param: x-lmdeck-cache``) on an unknown one."""
    raw = ctx.headers.get(CACHE_HEADER)
    if raw is None:
        return "lookup"
    value = raw.strip().lower()
    if value == "bypass":
        return "bypass"
    if value == "refresh":
        return "refresh"
    if value == "only-if-cached":
        return "only-if-cached"
    raise APIError(
        400,
        f"{CACHE_HEADER}: {raw!r} is not a cache mode: send bypass, refresh or only-if-cached, or leave the header out",
        param=CACHE_HEADER,
        code="invalid_header_value",
    )


def sampled(body: Any) -> bool:
    """True when a completion request samples: temperature left out (the upstream's default) or above 0."""
    if not hasattr(body, "temperature"):
        return False  # embeddings: deterministic
    temperature = body.temperature
    return temperature is None or temperature > 0


def miss_error(reason: str) -> APIError:
    """The 504 of ``only-if-cached`` when no stored answer can be used."""
    return APIError(
        504,
        f"no cached answer for this request ({reason}) and {CACHE_HEADER}: only-if-cached forbids asking the "
        "upstream: send the request without the header to get a fresh answer",
        code="cache_miss",
        headers={CACHE_HEADER: "miss"},
    )


def _finished(chunks: list[dict[str, Any]]) -> bool:
    return any(choice.get("finish_reason") for chunk in chunks for choice in chunk.get("choices") or [])


class ExactCache:
    """The ``cache-exact`` step (see the module docstring)."""

    name = "cache-exact"

    def __init__(self, store: CacheStore, settings: CacheSettings, routes: RouteConfigs) -> None:
        self.store = store
        self.settings = settings
        self.routes = routes

    def config_for(self, route_name: str) -> CacheConfig:
        route = self.routes(route_name)
        return self.settings.for_route(route.cache if route is not None else None)

    def decide(self, ctx: RequestContext) -> CacheRequest | None:
        """The request's cache decision, or None when the route's cache is off (or the route unknown)."""
        mode = request_mode(ctx)
        config = self.config_for(ctx.route_name)
        if not config.enabled or ctx.trace.bundle_hash is None:
            if mode == "only-if-cached":
                raise miss_error(f"route {ctx.route_name!r} has no cache: set `cache.enabled` on it")
            return None
        scope = cache_scope(ctx.principal, config.scope)
        vary = ctx.slots.get(CACHE_VARY)
        key = cache_key(ctx.kind, ctx.route_name, ctx.body, ctx.trace.bundle_hash, scope, vary)
        if sampled(ctx.body) and not config.allow_sampled:
            reason = "the request samples (temperature unset or above 0) and the route does not set cache.allow_sampled"
            return CacheRequest(mode, config, scope, key, cacheable=False, reason=reason, vary=vary)
        return CacheRequest(mode, config, scope, key, cacheable=True, vary=vary)

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        decision = self.decide(ctx)
        if decision is None:
            return await call_next(ctx)
        ctx.slots.put(CACHE_REQUEST, decision)
        if decision.mode == "bypass" or not decision.cacheable:
            if decision.mode == "only-if-cached":
                raise miss_error(decision.reason or "not cacheable")
            ctx.trace.cache_status = "bypass"
            return _with_header(await call_next(ctx), "bypass")
        if decision.mode != "refresh":
            entry = await self.store.get(decision.scope, decision.key)
            if entry is not None:
                return self.hit(ctx, entry, "exact")
            if decision.mode == "only-if-cached" and not decision.config.semantic.enabled:
                ctx.trace.cache_status = "miss"
                raise miss_error("nothing stored under its key")
        ctx.trace.cache_status = "miss"
        result = await call_next(ctx)
        if ctx.trace.cache_hit:
            return result  # a later cache step (semantic) answered
        return _with_header(await self.keep(ctx, decision, result), "miss")

    def hit(self, ctx: RequestContext, entry: CacheEntry, source: Literal["exact", "semantic"]) -> Result:
        """Replay ``entry`` and trace it as a hit of ``source``; the semantic step calls this too."""
        trace = ctx.trace
        trace.route = ctx.route_name  # the dispatcher, which sets it otherwise, is not reached
        trace.cache_hit = True
        trace.cache_status = "hit"
        trace.cache = source
        trace.cache_source_id = entry.source_trace_id
        trace.cost_micros = 0
        trace.saved_tokens = entry.saved_tokens
        trace.saved_micros = entry.cost_micros
        trace.upstream_model = entry.upstream_model
        trace.provider = entry.provider
        headers = {CACHE_HEADER: "hit", AGE_HEADER: str(entry.age_s())}
        return replay(entry, ctx.kind, stream=ctx.stream, headers=headers)

    async def keep(self, ctx: RequestContext, decision: CacheRequest, result: Result, put: Put | None = None) -> Result:
        """``result``, with its answer stored once it has completed whole: by ``put`` (the semantic
        store's), else in this step's store."""
        put = put or self.store.put
        if isinstance(result, Completed):
            await put(self.entry_for(ctx, decision, wire_dict(result.response), None))
            return result
        return Streamed(self._kept_stream(ctx, decision, result.chunks, put), result.headers)

    async def _kept_stream(
        self, ctx: RequestContext, decision: CacheRequest, chunks: AsyncIterator[BaseModel], put: Put
    ) -> AsyncIterator[BaseModel]:
        seen: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                seen.append(wire_dict(chunk))
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        # Reached only when the stream ended on its own: an error or a client that left raised above.
        if _finished(seen):
            await put(self.entry_for(ctx, decision, assemble(ctx.kind, seen), seen))

    def entry_for(
        self, ctx: RequestContext, decision: CacheRequest, response: dict[str, Any], chunks: list[dict[str, Any]] | None
    ) -> CacheEntry:
        """The entry keeping ``response`` (and a stream's ``chunks``) with the trace's usage and cost."""
        trace = ctx.trace
        usage = ctx.slots.get(USAGE)
        now = time.time()
        return CacheEntry(
            key=decision.key,
            scope=decision.scope,
            kind=ctx.kind,
            route=ctx.route_name,
            bundle_hash=trace.bundle_hash,
            response=response,
            chunks=chunks,
            source_trace_id=trace.id,
            created_at=now,
            expires_at=now + decision.config.ttl_s,
            input_tokens=usage.input_tokens if usage is not None else 0,
            output_tokens=usage.output_tokens if usage is not None else 0,
            cost_micros=trace.cost_micros,
            upstream_model=trace.upstream_model,
            provider=trace.provider,
        )


def _with_header(result: Result, value: str) -> Result:
    result.headers[CACHE_HEADER] = value
    return result
