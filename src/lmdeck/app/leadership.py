"""Background jobs that run on one process only: the holder of the leader lease.

    election = LeaderElection(leader_lease(settings.store_url, settings.data_dir), [retention, alerts])
    await election.start()    # tries at once; a follower tries again every ``retry_s`` seconds
    election.leading          # True while this process runs the jobs
    await election.stop()     # stops the jobs (if leading), then releases the lease

With ``lmdeck serve --workers N`` each worker process has one: the first to take the lease runs
retention, alert evaluation and the release controller; when it dies the lease is freed and another
worker's next try takes it over and starts them. A lease lost while leading (a PostgreSQL
connection dropped) stops the jobs until it is taken again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Protocol

from lmdeck.db.lease import LeaderLease
from lmdeck.polling import Poller

log = logging.getLogger(__name__)


class Job(Protocol):
    """A background job with a lifetime (the app's ``Service`` shape)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class LeaderElection:
    """Starts ``jobs`` while this process holds ``lease``; a service of the app (``start``/``stop``).

    >>> election = LeaderElection(FileLease(Path(".lmdeck/lmdeck.leader.lock")), [job])  # doctest: +SKIP
    """

    def __init__(self, lease: LeaderLease, jobs: Sequence[Job], *, retry_s: float = 3.0) -> None:
        self.lease = lease
        self.jobs = list(jobs)
        self.retry_s = retry_s
        self.leading = False
        self._retries = Poller(
            self._try,
            interval=retry_s,
            name="lmdeck-leader-election",
            log=log,
            failure=f"leader election failed; trying again in {retry_s:g}s",
        )

    async def start(self) -> None:
        await self._try()  # a lone process leads from its start, as it did before there were leases
        self._retries.start()

    async def stop(self) -> None:
        await self._retries.stop()
        await self._step_down()
        await asyncio.to_thread(self.lease.release)

    async def _try(self) -> None:
        held = await asyncio.to_thread(self.lease.try_acquire)
        if held and not self.leading:
            log.info("pid %d leads: background jobs run here", os.getpid())
            self.leading = True
            for job in self.jobs:
                await job.start()
        elif not held and self.leading:
            log.warning("pid %d lost the leader lease: its background jobs stop", os.getpid())
            await self._step_down()

    async def _step_down(self) -> None:
        if not self.leading:
            return
        self.leading = False
        for job in reversed(self.jobs):
            try:
                await job.stop()
            except Exception:
                log.exception("stopping %s failed", type(job).__name__)
