"""Training slots: at most ``fine_tuning.max_concurrent_jobs`` training workers at once.

A job whose data is prepared waits in ``queued`` for a slot, first come first served, and starts its
worker when one frees; a worker found still running after a restart takes its slot without waiting
(it runs whether or not there is room), so the count stays true::

    slots = TrainingSlots(1)
    async with slots.held():                 # waits while another job trains
        ...                                  # start the worker, follow it to its end
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TrainingSlots:
    """A counter of running training workers bounded by ``limit`` (>= 1), with FIFO waiters."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("fine_tuning.max_concurrent_jobs must be at least 1")
        self.limit = limit
        self.running = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def free(self) -> bool:
        """Whether a job would start now without waiting."""
        return self.running < self.limit and not self._waiters

    async def acquire(self, *, force: bool = False) -> None:
        """Take a slot, waiting for one unless ``force`` (a worker already running takes its slot at once)."""
        if force or self.free:
            self.running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releasing job hands its slot over: ``running`` already counts this one
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as this waiter was cancelled: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the longest waiter when there is one."""
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                if self.running > self.limit:  # more were forced in than fit: shrink first
                    self.running -= 1
                    self._waiters.insert(0, waiter)
                    return
                waiter.set_result(None)
                return
        self.running -= 1

    @asynccontextmanager
    async def held(self, *, force: bool = False) -> AsyncIterator[None]:
        """A slot for the ``async with`` body (see :meth:`acquire`)."""
        await self.acquire(force=force)
        try:
            yield
        finally:
            self.release()
