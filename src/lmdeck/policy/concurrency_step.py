"""The concurrency step: caps on requests in flight and streams open, per key and per team.

It runs before the rate-limit step, so that a refused request costs nothing else. A request over a
limit is answered at once with a 429 in OpenAI's shape whose ``code`` names the limit::

    {"error": {"message": "key 'k_1' already has 32 open streams (limit 32, policy.concurrency.key_streams): ...",
               "type": "rate_limit_error", "param": null, "code": "key_streams_exceeded"}}

with ``retry-after: 1``. A whole answer gives its place back when it is returned, a stream when it
ends or its client goes away. The step also tells providers whom the request is for
(:data:`lmdeck.providers.caller.CURRENT_CALLER`), which the local engine uses to share its batch
fairly among teams and keys.
"""

from __future__ import annotations

from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.policy.concurrency import ConcurrencyLimiter, ConcurrencyRefused
from lmdeck.policy.metering import observed
from lmdeck.protocol import APIError
from lmdeck.providers.caller import CURRENT_CALLER, Caller

RETRY_AFTER_SECONDS = 1


class ConcurrencyCap:
    """Admits a request only while its key and team are under their in-flight and open-stream caps."""

    name = "concurrency"

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self.limiter = limiter

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        principal = ctx.principal
        if principal is None:
            return await call_next(ctx)
        try:
            lease = self.limiter.acquire(key=principal.key_id, team=principal.team_id, stream=ctx.stream)
        except ConcurrencyRefused as refused:
            ctx.trace.metadata["concurrency_refused"] = refused.limit.code
            raise APIError(
                429, str(refused), code=refused.limit.code, headers={"retry-after": str(RETRY_AFTER_SECONDS)}
            ) from None
        token = CURRENT_CALLER.set(Caller(key=principal.key_id, team=principal.team_id))
        try:
            result = await call_next(ctx)
        except BaseException:
            self.limiter.release(lease)
            raise
        finally:
            CURRENT_CALLER.reset(token)
        if isinstance(result, Completed):
            self.limiter.release(lease)
            return result
        assert isinstance(result, Streamed)

        async def release(_: BaseException | None) -> None:
            self.limiter.release(lease)

        return Streamed(observed(result.chunks, release), result.headers)
