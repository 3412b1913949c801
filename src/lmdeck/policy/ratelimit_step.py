"""The rate-limit step: requests and tokens per minute, per key, per team and per route.

Limits come from the key (or ``policy.key_limits`` when the key sets none), its
team, and ``policy.route_limits``. A token limit takes the request's tokens up
front, counted so that the real number cannot be higher (the prompt's bound +
``max_tokens``, see :mod:`lmdeck.policy.estimate`), and settles with the real
count once the response's usage is known. Answers carry OpenAI's headers::

    x-ratelimit-limit-requests: 60         x-ratelimit-limit-tokens: 10000
    x-ratelimit-remaining-requests: 59     x-ratelimit-remaining-tokens: 9150
    x-ratelimit-reset-requests: 1s         x-ratelimit-reset-tokens: 5.1s

and a refusal is a 429 in OpenAI's shape (``code: rate_limit_exceeded``, type
``requests`` or ``tokens``) with ``retry-after``.

A request made by lmdeck itself for a client that can wait (a batch row) calls
:meth:`RateLimit.wait_admitted` before the pipeline: it sleeps until the buckets have room, takes
it, and the step then admits the request on that grant instead of drawing again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Mapping

from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Slot, Streamed
from lmdeck.policy.cost import USAGE
from lmdeck.policy.estimate import token_need
from lmdeck.policy.key_cache import KeyCache
from lmdeck.policy.metering import observed
from lmdeck.policy.ratelimit import BucketState, Demand, Grant, RateLimiter
from lmdeck.protocol import APIError
from lmdeck.settings import PolicySettings

#: A grant taken before the pipeline ran (:meth:`RateLimit.wait_admitted`), which the step admits on.
ADMITTED: Slot[Grant] = Slot("ratelimit.admitted")

UNIT_NAMES = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


def format_reset(seconds: float) -> str:
    """A duration the way OpenAI writes it: ``120ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"


def ratelimit_headers(states: Iterable[BucketState]) -> dict[str, str]:
    """One set of ``x-ratelimit-*`` headers per unit, from its most constrained bucket."""
    tightest: dict[str, BucketState] = {}
    for state in states:
        known = tightest.get(state.unit)
        if known is None or state.remaining < known.remaining:
            tightest[state.unit] = state
    headers: dict[str, str] = {}
    for unit, state in tightest.items():
        headers[f"x-ratelimit-limit-{unit}"] = str(state.limit)
        headers[f"x-ratelimit-remaining-{unit}"] = str(state.remaining)
        headers[f"x-ratelimit-reset-{unit}"] = format_reset(state.reset_seconds)
    return headers


def _refusal(grant: Grant, requested: Demand) -> APIError:
    scope, _, rest = requested.bucket.partition(":")
    subject = rest.rsplit(":", 1)[0]
    what = f"{scope} {subject!r} on {UNIT_NAMES.get(requested.unit, requested.unit)}"
    state = next(s for s in grant.states if s.bucket == requested.bucket)
    headers = ratelimit_headers(grant.states)
    if grant.retry_after is None:
        message = (
            f"Request too large for {what}: Limit {requested.limit}, Requested {requested.amount}. "
            "Lower max_tokens or shorten the prompt, or ask an admin to raise the limit."
        )
    else:
        wait = grant.retry_after
        message = (
            f"Rate limit reached for {what}: Limit {requested.limit}, Remaining {state.remaining}, "
            f"Requested {requested.amount}. Please try again in {format_reset(wait)}."
        )
        headers["retry-after"] = str(max(math.ceil(wait), 1))
        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
    return APIError(429, message, type=requested.unit, code="rate_limit_exceeded", headers=headers)


class RateLimit:
    """Admits a request only if every bucket it draws on has room; adds the limit headers."""

    name = "ratelimit"

    def __init__(self, limiter: RateLimiter, keys: KeyCache, policy: PolicySettings) -> None:
        self.limiter = limiter
        self.keys = keys
        self.policy = policy

    def demands(self, ctx: RequestContext) -> list[Demand]:
        principal = ctx.principal
        if principal is None:
            return []
        key = self.keys.key(principal.key_id)
        team = self.keys.team(principal.team_id)
        route = self.policy.route_limits.get(ctx.route_name)
        defaults = self.policy.key_limits
        scopes = [
            (
                "key",
                principal.key_id,
                (key.rpm if key else None) or defaults.rpm,
                (key.tpm if key else None) or defaults.tpm,
            ),
            ("team", principal.team_id, team.rpm if team else None, team.tpm if team else None),
            ("route", ctx.route_name, route.rpm if route else None, route.tpm if route else None),
        ]
        out: list[Demand] = []
        tokens: int | None = None
        for scope, subject, rpm, tpm in scopes:
            if subject is None:
                continue
            if rpm:
                out.append(Demand(f"{scope}:{subject}:requests", rpm, 1, "requests"))
            if tpm:
                if tokens is None:
                    tokens = token_need(ctx, assumed_max_tokens=self.policy.assumed_max_tokens).rate_tokens
                out.append(Demand(f"{scope}:{subject}:tokens", tpm, tokens, "tokens"))
        return out

    async def wait_admitted(self, ctx: RequestContext, deadline: float) -> None:
        """Sleep until every bucket ``ctx`` draws on has room (as the refusals' ``retry_after`` says),
        then take it for ``ctx``. Raises the 429 when the wait would end after ``deadline`` (epoch
        seconds) or the request can never fit (larger than a bucket)."""
        demands = self.demands(ctx)
        while demands:
            grant = await self.limiter.acquire(demands)
            if grant.admitted:
                ctx.slots.put(ADMITTED, grant)
                return
            assert grant.refused is not None
            if grant.retry_after is None or time.time() + grant.retry_after > deadline:
                raise _refusal(grant, grant.refused)
            await asyncio.sleep(grant.retry_after)

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        demands = self.demands(ctx)
        if not demands:
            return await call_next(ctx)
        grant = ctx.slots.get(ADMITTED) or await self.limiter.acquire(demands)
        if not grant.admitted:
            assert grant.refused is not None
            raise _refusal(grant, grant.refused)
        headers = ratelimit_headers(grant.states)
        token_buckets = [d.bucket for d in demands if d.unit == "tokens"]
        try:
            result = await call_next(ctx)
        except BaseException:
            await self._settle(ctx, grant, token_buckets)
            raise
        if isinstance(result, Completed):
            await self._settle(ctx, grant, token_buckets)
            result.headers.update(headers)
            return result
        assert isinstance(result, Streamed)

        async def settle(_: BaseException | None) -> None:
            await self._settle(ctx, grant, token_buckets)

        return Streamed(observed(result.chunks, settle), {**result.headers, **headers})

    async def _settle(self, ctx: RequestContext, grant: Grant, buckets: list[str]) -> None:
        if not buckets:
            return
        usage = ctx.slots.get(USAGE)
        used = usage.total if usage is not None else 0
        actual: Mapping[str, int] = dict.fromkeys(buckets, used)
        await self.limiter.settle(grant, actual)
