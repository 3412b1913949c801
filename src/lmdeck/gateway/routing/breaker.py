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

The state lives behind :class:`BreakerStore` so that a shared store (Redis) can stand in
for the in-process one and let several gateway processes agree. Timestamps are wall-clock
seconds for the same reason.
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


class BreakerStore(Protocol):
    """Where breaker records live. Reads of unknown targets return a closed record."""

    async def load(self, target_id: str) -> BreakerRecord: ...

    async def save(self, target_id: str, record: BreakerRecord) -> None: ...

    def snapshot(self) -> dict[str, BreakerRecord]:
        """The records last seen by this process (for metrics; may lag a shared store)."""
        ...


class InProcessBreakerStore:
    """Breaker records in this process's memory."""

    def __init__(self) -> None:
        self._records: dict[str, BreakerRecord] = {}

    async def load(self, target_id: str) -> BreakerRecord:
        return self._records.get(target_id, CLOSED)

    async def save(self, target_id: str, record: BreakerRecord) -> None:
        self._records[target_id] = record

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
        record = await self.store.load(target_id)
        if record.state == "closed":
            return Permit(target_id)
        if record.state == "open":
            if self.clock() - record.opened_at < self.settings.reset_timeout:
                return None
            record = replace(record, state="half_open", probes=0)
        if record.probes >= self.settings.half_open_max:
            return None
        await self.store.save(target_id, replace(record, probes=record.probes + 1))
        return Permit(target_id, probe=True)

    async def success(self, permit: Permit) -> None:
        record = await self.store.load(permit.target_id)
        if permit.probe or record.state == "half_open":
            await self.store.save(permit.target_id, CLOSED)
        elif record.failures:
            await self.store.save(permit.target_id, replace(record, failures=0))

    async def failure(self, permit: Permit) -> None:
        record = await self.store.load(permit.target_id)
        now = self.clock()
        if record.state == "half_open" or permit.probe:
            record = BreakerRecord(state="open", failures=record.failures + 1, opened_at=now)
        elif record.state == "closed":
            failures = record.failures + 1
            if failures >= self.settings.failure_threshold:
                record = BreakerRecord(state="open", failures=failures, opened_at=now)
            else:
                record = replace(record, failures=failures)
        await self.store.save(permit.target_id, record)

    async def trip(self, target_id: str) -> BreakerRecord:
        """Open ``target_id``'s breaker now, as if it had just failed ``failure_threshold`` times in a row
        (an operator's or an alert's decision); it half-opens after ``reset_timeout`` like any open breaker."""
        record = BreakerRecord(state="open", failures=self.settings.failure_threshold, opened_at=self.clock())
        await self.store.save(target_id, record)
        return record

    async def release(self, permit: Permit) -> None:
        """The request ended without a verdict (cancelled): give back a probe slot."""
        if not permit.probe:
            return
        record = await self.store.load(permit.target_id)
        if record.state == "half_open" and record.probes > 0:
            await self.store.save(permit.target_id, replace(record, probes=record.probes - 1))

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
