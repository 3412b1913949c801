"""Polling: a background task that calls a coroutine every few seconds until stopped.

The services that pick up what other processes changed (registry snapshot, keys and
budgets, online rules, experiments) each run one::

    poller = Poller(service.refresh, interval=2.0, name="experiments-poll", log=log,
                    failure="reloading experiments failed; retrying in 2.0s")
    poller.start()          # a second start keeps the one task
    poller.nudge()          # tick now (another process announced a change), then every 2.0 s again
    await poller.stop()     # cancels it and waits for it to end

A failed call is logged with its traceback and the next one comes on time: a
database that is briefly away must not end the polling for good. Nudges that come
while a tick runs are folded into one more tick right after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Poller:
    """Calls ``tick()`` every ``interval`` seconds in one task (see the module docstring)."""

    def __init__(
        self,
        tick: Callable[[], Awaitable[object]],
        *,
        interval: float,
        name: str,
        log: logging.Logger,
        failure: str,
    ) -> None:
        self.tick = tick
        self.interval = interval
        self.name = name
        self.log = log
        self.failure = failure
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._nudged = False

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            if self._nudged:
                self._wake.set()
            self._task = asyncio.create_task(self._run(), name=self.name)

    def nudge(self) -> None:
        """Run the tick now instead of at the end of the interval (while stopped: at once when started).

        Never blocks; call it on the event loop.
        """
        if self._wake is not None:
            self._wake.set()
        else:
            self._nudged = True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._wake = None

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.interval)
            wake.clear()
            self._nudged = False
            try:
                await self.tick()
            except Exception:
                self.log.exception(self.failure)
