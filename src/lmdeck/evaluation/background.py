"""A bounded queue drained by background workers: how evaluation stays off the request path.

``offer`` never waits: when the queue is full the item is dropped and counted, so a
slow evaluator or a slow database can only lose samples, never slow a request::

    queue = BackgroundQueue("online-eval", handle_batch, maxsize=1000, workers=2)
    await queue.start()
    queue.offer(item)        # from a trace observer, on the event loop
    await queue.stop()       # drains what is left (bounded by ``drain_timeout``)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundQueue(Generic[T]):
    """Items offered from the event loop, handled in batches by ``workers`` tasks."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], Awaitable[None]],
        *,
        maxsize: int = 1000,
        workers: int = 1,
        batch_size: int = 50,
        drain_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.handle = handle
        self.maxsize = maxsize
        self.workers = workers
        self.batch_size = batch_size
        self.drain_timeout = drain_timeout
        self.accepted = 0
        self.dropped = 0
        self.failed = 0
        self._queue: asyncio.Queue[T] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def offer(self, item: T) -> bool:
        """Enqueue without waiting; False (and counted) when full or not started."""
        if self._queue is None:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        self.accepted += 1
        return True

    async def start(self) -> None:
        if self._queue is not None:
            return
        self._queue = asyncio.Queue(self.maxsize)
        self._tasks = [asyncio.create_task(self._work(), name=f"{self.name}-{i}") for i in range(max(1, self.workers))]

    async def _work(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            batch = [await queue.get()]
            while len(batch) < self.batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self.handle(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failed += len(batch)
                log.exception("%s: a batch of %d failed", self.name, len(batch))
            finally:
                for _ in batch:
                    queue.task_done()

    async def join(self) -> None:
        """Wait until every item offered so far has been handled."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self) -> None:
        if self._queue is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), self.drain_timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._queue = None
