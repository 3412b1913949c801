"""Polling: a background task that calls a coroutine every few seconds until stopped.

The services that pick up what other processes changed (registry snapshot, keys and
budgets, online rules, experiments) each run one::

    poller = Poller(service.refresh, interval=2.0, name="experiments-poll", log=log,
                    failure="reloading experiments failed; retrying in 2.0s")
    poller.start()          # a second start keeps the one task
    await poller.stop()     # cancels it and waits for it to end

A failed call is logged with its traceback and the next one comes on time: a
database that is briefly away must not end the polling for good.
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

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:
                self.log.exception(self.failure)
