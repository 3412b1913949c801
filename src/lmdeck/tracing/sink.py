"""The gateway's trace sink: the spool on the request path, the store writer behind it.

    sink = DurableTraceSink.from_settings(settings, db)
    await sink.start()                 # opens the spool; replays what an earlier process left
    await sink.submit(record)          # durable on disk when this resolves
    sink.depth                         # records not yet in the store (a metric)
    await sink.stop()                  # spool flushed, then the store caught up

Requests only ever touch :meth:`submit`, which queues and returns; the disk and
the database are reached from the spool's and the writer's threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.segments import SegmentLog
from lmdeck.tracing.spool import TraceSpool
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.store import TraceStore
from lmdeck.tracing.store_process import StoreProcess
from lmdeck.tracing.writer import REJECTED_NAME, StoreWriter

log = logging.getLogger(__name__)


class DurableTraceSink:
    """A :class:`TraceSpool` feeding a :class:`StoreWriter`; a service with ``start``/``stop``.

    >>> sink = DurableTraceSink(spool, StoreWriter(spool.segments, store))  # doctest: +SKIP
    """

    def __init__(self, spool: TraceSpool, writer: StoreWriter, *, stop_timeout: float = 30.0) -> None:
        self.spool = spool
        self.writer = writer
        self.stop_timeout = stop_timeout
        self._lock = threading.Lock()
        self._running = False

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Database, store: TraceStore | None = None, *, spool_dir: Path | None = None
    ) -> DurableTraceSink:
        """The spool in ``spool_dir`` (default ``settings.spool_dir``) feeding ``store`` (default the SQL store)."""
        tracing = settings.tracing
        directory = spool_dir or settings.spool_dir
        segments = SegmentLog()
        spool = TraceSpool(
            directory,
            fsync_interval_ms=tracing.fsync_interval_ms,
            segment_bytes=tracing.segment_bytes,
            segments=segments,
        )
        # The inserts of the SQL store in a process of their own, unless the database lives in this one.
        separate = store is None and tracing.writer_process and not db.in_memory
        writer = StoreWriter(
            segments,
            store or SQLTraceStore(db),
            batch_size=tracing.batch_size,
            rejected_path=directory / REJECTED_NAME,
            process=StoreProcess(db.url) if separate else None,
        )
        return cls(spool, writer)

    @property
    def depth(self) -> int:
        """Records accepted but not yet in the store (queued for disk, or on disk awaiting the writer)."""
        return self.spool.queued + self.writer.pending

    def open(self) -> None:
        """Start both threads (blocking; :meth:`start` runs it off the event loop)."""
        with self._lock:
            if self._running:
                return
            self.spool.open()
            self.writer.start()
            self._running = True

    def close(self) -> bool:
        """Flush the spool, then let the store catch up; True if everything was stored."""
        with self._lock:
            if not self._running:
                return True
            self._running = False
            self.spool.close(self.stop_timeout)
            done = self.writer.stop(self.stop_timeout)
        if not done:
            log.warning("traces not yet stored stay in %s and are stored at the next start", self.spool.directory)
        return done

    async def start(self) -> None:
        await asyncio.to_thread(self.open)

    async def stop(self) -> None:
        await asyncio.to_thread(self.close)

    def submit(self, record: TraceRecord) -> asyncio.Future[None]:
        if not self._running:
            # Used without the app's lifespan (an embedding, a test client): start on first use.
            log.info("trace sink started on first use; start it with the app to keep this off a request")
            self.open()
        return self.spool.submit(record)

    def wait_stored(self, timeout: float = 10.0) -> bool:
        """Block until every record submitted so far is in the store; False on timeout."""
        end = time.monotonic() + timeout
        while self.spool.queued > 0:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return self.writer.wait_idle(max(end - time.monotonic(), 0.0))

    async def stored(self, timeout: float = 10.0) -> bool:
        """:meth:`wait_stored` for async callers."""
        return await asyncio.to_thread(self.wait_stored, timeout)
