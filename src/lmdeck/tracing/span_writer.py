"""The span writer: spans received over OTLP, stored by a background thread, never on the request path.

    writer = SpanWriter(db, max_pending=20_000)
    await writer.start()
    writer.submit(rows)        # False when the queue is full: the endpoint answers 503, the exporter retries
    writer.wait_idle(5.0)      # every span submitted so far is stored
    await writer.stop()        # stores what is queued, then returns

An accepted export is in memory until the writer's next batch (a few milliseconds):
OTLP exporters keep and retry what the endpoint refuses, so a full queue answers
503 rather than blocking the request or growing without bound. Spans still queued
when the process dies are lost; lmdeck's own traces go through the durable spool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from lmdeck.db import Database
from lmdeck.tracing.spans import SpanRow, insert_spans

log = logging.getLogger(__name__)


class SpanWriter:
    """A bounded queue of spans and the thread that stores them in batches (see the module docs)."""

    def __init__(
        self,
        db: Database,
        *,
        max_pending: int = 20_000,
        batch_size: int = 500,
        retry_max_s: float = 5.0,
        autostart: bool = True,
    ) -> None:
        self.db = db
        #: Start the thread on the first :meth:`submit` when nobody called :meth:`start` (an app without lifespan).
        self.autostart = autostart
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.retry_max_s = retry_max_s
        self._queue: deque[SpanRow] = deque()
        self._cond = threading.Condition()
        self._busy = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: Spans stored, spans refused by the store (bad data), exports refused because the queue was full.
        self.stored = 0
        self.failed = 0
        self.refused = 0

    @property
    def pending(self) -> int:
        """Spans accepted and not yet stored."""
        return len(self._queue) + self._busy

    def submit(self, rows: Sequence[SpanRow]) -> bool:
        """Queue ``rows`` for the store at once; False (nothing queued) when they do not fit."""
        with self._cond:
            if self._stopping:
                return False
            if self.pending + len(rows) > self.max_pending:
                self.refused += 1
                return False
            self._queue.extend(rows)
            self._cond.notify()
        if self._thread is None and self.autostart:
            self.open()
        return True

    def open(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="lmdeck-span-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> bool:
        """Store what is queued (until ``timeout``) and end the thread; True if nothing was left."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        return self.pending == 0

    async def start(self) -> None:
        await asyncio.to_thread(self.open)

    async def stop(self) -> None:
        await asyncio.to_thread(self.close)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every span submitted so far is stored (or failed); False if ``timeout`` passes first."""
        end = time.monotonic() + timeout
        with self._cond:
            while self.pending:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def _take(self) -> list[SpanRow] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            self._busy = len(batch)
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            self._store(batch)
            with self._cond:
                self._busy = 0
                self._cond.notify_all()

    def _store(self, batch: list[SpanRow]) -> None:
        delay = 0.05
        while True:
            try:
                insert_spans(self.db, batch)
                self.stored += len(batch)
                return
            except (OperationalError, InterfaceError) as exc:
                if self._stopping:
                    log.warning("%d spans not stored: the store is unavailable at shutdown (%s)", len(batch), exc)
                    self.failed += len(batch)
                    return
                log.warning("the store is unavailable for spans, retrying in %.2fs: %s", delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
            except DBAPIError as exc:
                # Data the store refuses: dropping this batch keeps the ones behind it moving.
                log.error("%d spans refused by the store: %s", len(batch), exc)
                self.failed += len(batch)
                return
