"""Backoff delays and which failures retry, fall back or trip a breaker."""

from __future__ import annotations

import random

from lmdeck.gateway.routing.retry import RetryPolicy, falls_back, retryable, trips_breaker
from lmdeck.providers.base import UpstreamError, UpstreamTimeout
from lmdeck.settings import RetrySettings


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(RetrySettings(backoff_base=0.1, backoff_max=0.3, max_retry_after=5))
    rng = random.Random(1)
    for retry, ceiling in ((0, 0.1), (1, 0.2), (2, 0.3), (6, 0.3)):
        delays = [policy.delay(retry, rng, None, same_target=False) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spans the range
        assert len(set(delays)) > 100


def test_retry_after_is_honoured_on_the_same_target_only_and_capped() -> None:
    policy = RetryPolicy(RetrySettings(backoff_base=0.1, backoff_max=0.3, max_retry_after=5))
    rng = random.Random(1)
    assert policy.delay(0, rng, 2.0, same_target=True) == 2.0
    assert policy.delay(0, rng, 60.0, same_target=True) == 5.0
    assert policy.delay(0, rng, 2.0, same_target=False) <= 0.1


def test_classification() -> None:
    server, limited, bad, auth = (
        UpstreamError(500, "x"),
        UpstreamError(429, "x"),
        UpstreamError(400, "x"),
        UpstreamError(401, "x"),
    )
    assert retryable(server) and retryable(limited) and not retryable(bad) and not retryable(auth)
    assert falls_back(auth) and not falls_back(bad)
    assert trips_breaker(server) and trips_breaker(UpstreamTimeout("slow"))
    assert not trips_breaker(limited) and not trips_breaker(bad)
