"""Requests in flight and streams open, per key and per team: a cap on what one caller holds at once.

A rate limit counts what a caller started in the last minute; it does not stop one key from opening
three hundred streams in a second and leaving them open, which holds a shared model's rows and queue
for as long as they last. These counters do::

    limiter = ConcurrencyLimiter(ConcurrencySettings(key_streams=2))
    lease = limiter.acquire(key="k1", team="t1", stream=True)     # a Lease, or raises ConcurrencyRefused
    ...                                                           # the request runs
    limiter.release(lease)                                        # once, when it ends (a stream: when it closes)

``acquire`` checks every limit before it counts anything, with no suspension point in between, so
concurrent requests cannot overshoot. The counts live in this process.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from lmdeck.settings import ConcurrencySettings


@dataclass(frozen=True)
class Limit:
    """One limit a request may hit: ``scope`` (``key``/``team``), ``unit`` (``in_flight``/``streams``)."""

    scope: str
    unit: str
    subject: str
    limit: int

    @property
    def code(self) -> str:
        """The error code naming this limit: ``key_in_flight_exceeded``, ``team_streams_exceeded``..."""
        return f"{self.scope}_{self.unit}_exceeded"

    @property
    def setting(self) -> str:
        return f"policy.concurrency.{self.scope}_{self.unit}"


class ConcurrencyRefused(Exception):
    """A request would exceed ``limit``; ``held`` is how many its subject holds now."""

    def __init__(self, limit: Limit, held: int) -> None:
        what = "requests in flight" if limit.unit == "in_flight" else "open streams"
        super().__init__(
            f"{limit.scope} {limit.subject!r} already has {held} {what} (limit {limit.limit}, "
            f"{limit.setting}): wait for one to finish, or ask an admin to raise the limit"
        )
        self.limit = limit
        self.held = held


@dataclass
class Lease:
    """What one admitted request holds; released exactly once."""

    counted: list[tuple[str, str, str]] = field(default_factory=list)  # (scope, unit, subject)
    released: bool = False


class ConcurrencyLimiter:
    """In-flight and open-stream counters per key and per team, for one gateway process."""

    def __init__(self, settings: ConcurrencySettings) -> None:
        self.settings = settings
        self._held: Counter[tuple[str, str, str]] = Counter()

    def _limits(self, key: str, team: str | None, stream: bool) -> list[Limit]:
        s = self.settings
        limits = [Limit("key", "in_flight", key, s.key_in_flight)]
        if stream:
            limits.append(Limit("key", "streams", key, s.key_streams))
        if team:
            limits.append(Limit("team", "in_flight", team, s.team_in_flight))
            if stream:
                limits.append(Limit("team", "streams", team, s.team_streams))
        return limits

    def acquire(self, *, key: str, team: str | None, stream: bool) -> Lease:
        """Count one request of ``key`` (of ``team``); raises :class:`ConcurrencyRefused` at a limit."""
        limits = self._limits(key, team, stream)
        for limit in limits:
            held = self._held[(limit.scope, limit.unit, limit.subject)]
            if held >= limit.limit:
                raise ConcurrencyRefused(limit, held)
        lease = Lease([(limit.scope, limit.unit, limit.subject) for limit in limits])
        for counter in lease.counted:
            self._held[counter] += 1
        return lease

    def release(self, lease: Lease) -> None:
        if lease.released:
            return
        lease.released = True
        for counter in lease.counted:
            self._held[counter] -= 1
            if self._held[counter] <= 0:
                del self._held[counter]

    def held(self, scope: str, unit: str, subject: str) -> int:
        """How many ``unit`` (``in_flight``/``streams``) ``subject`` of ``scope`` holds now."""
        return self._held[(scope, unit, subject)]
