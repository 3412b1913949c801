"""LeaderElection: the jobs run while the lease is held, start when a follower takes it over, stop when lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from lmdeck.app.leadership import LeaderElection


class SwitchLease:
    """A FAKE lease whose availability the test sets (``free``); records releases."""

    def __init__(self, free: bool) -> None:
        self.free = free
        self.held = False
        self.released = 0

    def try_acquire(self) -> bool:
        if self.held and self.free:
            return True
        self.held = self.free
        return self.held

    def release(self) -> None:
        self.held = False
        self.released += 1


class RecordingJob:
    """A FAKE background job that records its starts and stops."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def test_a_free_lease_leads_from_the_start() -> None:
    async def scenario() -> None:
        job = RecordingJob()
        election = LeaderElection(SwitchLease(free=True), [job], retry_s=0.01)
        await election.start()
        assert election.leading and job.events == ["start"]
        await election.stop()
        assert job.events == ["start", "stop"] and not election.leading

    asyncio.run(scenario())


def test_a_follower_takes_over_when_the_lease_frees_and_steps_down_when_it_is_lost() -> None:
    async def scenario() -> None:
        lease, job = SwitchLease(free=False), RecordingJob()
        election = LeaderElection(lease, [job], retry_s=0.01)
        await election.start()
        assert not election.leading and job.events == []
        lease.free = True  # the leader died
        assert await eventually(lambda: election.leading)
        assert job.events == ["start"]
        lease.free = False  # the lease was lost (a dropped PostgreSQL connection)
        assert await eventually(lambda: not election.leading)
        assert job.events == ["start", "stop"]
        await election.stop()
        assert job.events == ["start", "stop"] and lease.released == 1

    asyncio.run(scenario())
