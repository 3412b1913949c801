"""Rate limits: requests and tokens per minute, as token buckets that refill continuously.

    limiter = MemoryRateLimiter()
    grant = await limiter.acquire([Demand("key:k1:tokens", limit=10_000, amount=850)])
    if grant.admitted:
        ...                                          # the request runs
        await limiter.settle(grant, {"key:k1:tokens": 612})   # the real count replaces the reservation

A bucket holds up to ``limit`` units and refills at ``limit`` per minute, the
way OpenAI's limits behave; a request takes its estimated tokens up front and
settling gives back (or takes more of) the difference, so a bucket can run into
debt when the estimate was low. Every demand of a request is checked before
any is taken, with no suspension point in between, so concurrent requests
cannot overdraw a bucket.

The limiter is an interface: :class:`MemoryRateLimiter` serves one process;
:class:`lmdeck.policy.ratelimit_redis.RedisRateLimiter` (one atomic script in the
Redis every replica shares) serves several behind the same protocol.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Clock = Callable[[], float]


@dataclass(frozen=True)
class Demand:
    """``amount`` units from the bucket ``bucket`` whose size (per minute) is ``limit``."""

    bucket: str
    limit: int
    amount: int
    unit: str = "tokens"


@dataclass(frozen=True)
class BucketState:
    bucket: str
    unit: str
    limit: int
    remaining: int
    reset_seconds: float


@dataclass
class Grant:
    """The outcome of an acquire: admitted or not, with every bucket's state for the headers."""

    admitted: bool
    states: list[BucketState] = field(default_factory=list)
    taken: dict[str, int] = field(default_factory=dict)
    refused: Demand | None = None
    retry_after: float | None = None
    settled: bool = False
    #: Admitted by a limiter's in-process fallback (its shared store was unavailable): settled there.
    fallback: bool = False


class RateLimiter(Protocol):
    async def acquire(self, demands: Sequence[Demand]) -> Grant: ...

    async def settle(self, grant: Grant, actual: Mapping[str, int]) -> None: ...


@dataclass
class _Bucket:
    limit: int
    level: float
    at: float

    def refill(self, limit: int, now: float) -> None:
        if limit != self.limit:
            self.level = min(self.level, float(limit))
            self.limit = limit
        elapsed = max(now - self.at, 0.0)
        self.level = min(float(self.limit), self.level + elapsed * self.limit / 60.0)
        self.at = now

    def seconds_until(self, level: float) -> float:
        missing = level - self.level
        return max(missing, 0.0) * 60.0 / self.limit


class MemoryRateLimiter:
    """Token buckets in this process's memory."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, demand: Demand, now: float) -> _Bucket:
        bucket = self._buckets.get(demand.bucket)
        if bucket is None:
            bucket = self._buckets[demand.bucket] = _Bucket(demand.limit, float(demand.limit), now)
        else:
            bucket.refill(demand.limit, now)
        return bucket

    def _state(self, demand: Demand, bucket: _Bucket) -> BucketState:
        return BucketState(
            bucket=demand.bucket,
            unit=demand.unit,
            limit=demand.limit,
            remaining=max(math.floor(bucket.level), 0),
            reset_seconds=bucket.seconds_until(bucket.limit),
        )

    async def acquire(self, demands: Sequence[Demand]) -> Grant:
        # No await in here: checking every bucket and taking from them is one step for the event loop.
        now = self.clock()
        buckets = [self._bucket(d, now) for d in demands]
        for demand, bucket in zip(demands, buckets, strict=True):
            if demand.amount > demand.limit:
                return Grant(False, [self._state(d, b) for d, b in zip(demands, buckets, strict=True)], refused=demand)
            if bucket.level < demand.amount:
                return Grant(
                    False,
                    [self._state(d, b) for d, b in zip(demands, buckets, strict=True)],
                    refused=demand,
                    retry_after=bucket.seconds_until(demand.amount),
                )
        for demand, bucket in zip(demands, buckets, strict=True):
            bucket.level -= demand.amount
        return Grant(
            True,
            [self._state(d, b) for d, b in zip(demands, buckets, strict=True)],
            taken={d.bucket: d.amount for d in demands},
        )

    async def settle(self, grant: Grant, actual: Mapping[str, int]) -> None:
        if grant.settled or not grant.admitted:
            return
        grant.settled = True
        now = self.clock()
        for name, amount in actual.items():
            taken = grant.taken.get(name)
            bucket = self._buckets.get(name)
            if taken is None or bucket is None:
                continue
            bucket.refill(bucket.limit, now)
            bucket.level = min(float(bucket.limit), bucket.level + taken - amount)
