"""When to try again, and how long to wait first.

- Retries happen only for retryable failures (429, 5xx, timeouts, broken connections),
  within a route, each on the next target in the strategy's order.
- The wait is jittered exponential backoff: uniform in ``[0, min(backoff_max,
  backoff_base * 2**n)]``. When the retry goes back to the target that answered with a
  ``Retry-After``, that wait is honoured, capped at ``max_retry_after``.
- A route whose attempts are spent falls back to the next route of ``fallbacks``; so
  does a target misconfiguration the upstream reports (401, 403, 404), which a retry
  on the same route cannot fix but another route may.
- Failures that trip a breaker are those that say the upstream is unwell: 5xx and timeouts,
  not the caller's 4xx nor rate limiting. A local model that is busy (its queue is full) or still
  loading says nothing about its health either: :data:`NO_VERDICT` kinds leave the breaker as it was.

>>> policy = RetryPolicy(RetrySettings(backoff_base=0.1, backoff_max=1.0, max_retry_after=5))
>>> policy.delay(0, random.Random(0), retry_after=30, same_target=True)
5.0
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lmdeck.providers.base import UpstreamError
from lmdeck.settings import RetrySettings

#: Upstream answers that point at the target's configuration rather than the request.
MISCONFIGURED = frozenset({401, 403, 404})


def retryable(exc: UpstreamError) -> bool:
    return exc.retryable


def falls_back(exc: UpstreamError) -> bool:
    return exc.retryable or exc.status in MISCONFIGURED


#: Failures that are no verdict on the target's health: capacity the caller competes for, or a warm-up.
NO_VERDICT = frozenset({"queue_full", "model_loading"})


def trips_breaker(exc: UpstreamError) -> bool:
    if exc.kind in NO_VERDICT:
        return False
    return exc.status >= 500 or exc.kind in ("timeout", "ttft_timeout")


def no_verdict(exc: UpstreamError) -> bool:
    """The failure says nothing of the target's health: its breaker neither counts it nor resets."""
    return exc.kind in NO_VERDICT


@dataclass(frozen=True)
class RetryPolicy:
    settings: RetrySettings

    def delay(self, retry: int, rng: random.Random, retry_after: float | None, same_target: bool) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        if retry_after is not None and same_target:
            return min(retry_after, self.settings.max_retry_after)
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * (2**retry))
        return rng.uniform(0.0, ceiling)
