"""Circuit breakers, one per target: stop sending requests to an upstream that keeps failing.

A breaker is *closed* (requests flow) until ``failure_threshold`` failures in a row open
it. While *open* the target is skipped. After ``reset_timeout`` seconds it is
*half-open*: up to ``half_open_max`` probe requests go through; a probe that succeeds
closes the breaker, one that fails opens it again::

    breakers = CircuitBreakers(BreakerSettings(failure_threshold=3))
    permit = await breakers.acquire("openai:gpt-4o")
    if permit is None:
        ...  # open: try another target
    else:
        await breakers.success(permit)   # or failure(permit), or release(permit) when neither

The state lives behind :class:`BreakerStore` so that a shared store
(:class:`~lmdeck.gateway.routing.breaker_redis.RedisBreakerStore`) can stand in for the
in-process one and let several gateway processes agree. Every change is one
:meth:`BreakerStore.update`, a read-modify-write the store makes atomic, so two processes
never both take the last half-open probe. Timestamps are wall-clock seconds for the same reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from lmdeck.settings import BreakerSettings

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerRecord:
    """What a store keeps per target."""

    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probes: int = 0


CLOSED = BreakerRecord()


#: A state change: the record as it is → the record it becomes. It may be called more than once
#: (a shared store retries it when another process changed the record meanwhile); the result of
#: the last call is the one kept, so it must depend only on its argument and on values fixed before.
Change = Callable[[BreakerRecord], BreakerRecord]


class BreakerStore(Protocol):
    """Where breaker records live. Reads of unknown targets return a closed record."""

    async def load(self, target_id: str) -> BreakerRecord: ...

    async def update(self, target_id: str, change: Change) -> BreakerRecord:
        """Apply ``change`` to ``target_id``'s record atomically (no other change in between);
        returns the record kept."""
        ...

    def snapshot(self) -> dict[str, BreakerRecord]:
        """The records last seen by this process (for metrics; may lag a shared store)."""
        ...


class InProcessBreakerStore:
    """Breaker records in this process's memory (an update never awaits, so it is atomic)."""

    def __init__(self) -> None:
        self._records: dict[str, BreakerRecord] = {}

    async def load(self, target_id: str) -> BreakerRecord:
        return self._records.get(target_id, CLOSED)

    async def update(self, target_id: str, change: Change) -> BreakerRecord:
        before = self._records.get(target_id, CLOSED)
        after = change(before)
        if after != before:
            self._records[target_id] = after
        return after

    def seed(self, target_id: str, record: BreakerRecord) -> None:
        """Start ``target_id`` from ``record`` unless this store already has one for it."""
        self._records.setdefault(target_id, record)

    def forget(self, target_id: str) -> None:
        """Drop ``target_id``'s record: it reads as closed again (or as what :meth:`seed` gives next)."""
        self._records.pop(target_id, None)

    def snapshot(self) -> dict[str, BreakerRecord]:
        return dict(self._records)


@dataclass(frozen=True)
class Permit:
    """Leave to send one request to a target; ``probe`` when the breaker is half-open."""

    target_id: str
    probe: bool = False


class CircuitBreakers:
    """The breakers of every target, over one store."""

    def __init__(
        self,
        settings: BreakerSettings,
        store: BreakerStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store: BreakerStore = store if store is not None else InProcessBreakerStore()
        self.clock = clock

    async def acquire(self, target_id: str) -> Permit | None:
        """A permit, or None while the breaker is open (or half-open with all probes out)."""
        now = self.clock()
        verdict: list[Permit | None] = [None]

        def take(record: BreakerRecord) -> BreakerRecord:
            verdict[0] = None
            if record.state == "closed":
                verdict[0] = Permit(target_id)
                return record
            if record.state == "open":
                if now - record.opened_at < self.settings.reset_timeout:
                    return record
                if self.settings.half_open_max < 1:
                    return record
                record = replace(record, state="half_open", probes=0)
            elif now - record.opened_at >= self.settings.reset_timeout:
                # Half-open, with no verdict for a whole reset_timeout since the last probe went out: that
                # probe's process died or its verdict was lost, so its slot is free again.
                record = replace(record, probes=0)
            if record.probes >= self.settings.half_open_max:
                return record
            verdict[0] = Permit(target_id, probe=True)
            # While half-open, opened_at is when the latest probe went out.
            return replace(record, probes=record.probes + 1, opened_at=now)

        await self.store.update(target_id, take)
        return verdict[0]

    async def success(self, permit: Permit) -> None:
        def close(record: BreakerRecord) -> BreakerRecord:
            if permit.probe or record.state == "half_open":
                return CLOSED
            if record.failures:
                return replace(record, failures=0)
            return record

        await self.store.update(permit.target_id, close)

    async def failure(self, permit: Permit) -> None:
        now = self.clock()

        def count(record: BreakerRecord) -> BreakerRecord:
            if record.state == "half_open" or permit.probe:
                return BreakerRecord(state="open", failures=record.failures + 1, opened_at=now)
            if record.state == "closed":
                failures = record.failures + 1
                if failures >= self.settings.failure_threshold:
                    return BreakerRecord(state="open", failures=failures, opened_at=now)
                return replace(record, failures=failures)
            return record

        await self.store.update(permit.target_id, count)

    async def trip(self, target_id: str) -> BreakerRecord:
        """Open ``target_id``'s breaker now, as if it had just failed ``failure_threshold`` times in a row
        (an operator's or an alert's decision); it half-opens after ``reset_timeout`` like any open breaker.
        With a shared store every process sees it open."""
        record = BreakerRecord(state="open", failures=self.settings.failure_threshold, opened_at=self.clock())
        return await self.store.update(target_id, lambda _: record)

    async def release(self, permit: Permit) -> None:
        """The request ended without a verdict (cancelled): give back a probe slot."""
        if not permit.probe:
            return

        def give_back(record: BreakerRecord) -> BreakerRecord:
            if record.state == "half_open" and record.probes > 0:
                return replace(record, probes=record.probes - 1)
            return record

        await self.store.update(permit.target_id, give_back)

    async def retry_in(self, target_id: str) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        record = await self.store.load(target_id)
        if record.state != "open":
            return 0.0
        return max(self.settings.reset_timeout - (self.clock() - record.opened_at), 0.0)

    def states(self) -> dict[str, BreakerState]:
        """The state of every breaker that has left ``closed`` at least once, by target id.

        An open breaker whose timeout has passed is reported ``half_open``: the next request probes.
        """
        now = self.clock()
        out: dict[str, BreakerState] = {}
        for target_id, record in self.store.snapshot().items():
            state = record.state
            if state == "open" and now - record.opened_at >= self.settings.reset_timeout:
                state = "half_open"
            out[target_id] = state
        return out
