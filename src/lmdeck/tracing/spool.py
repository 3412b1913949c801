"""The trace spool: append-only JSONL segments, fsynced in groups, before a response completes.

    spool = TraceSpool(Path(".lmdeck/spool"), fsync_interval_ms=2.0, segment_bytes=8 << 20)
    spool.open()                       # takes the directory's lock, starts the writer thread
    await spool.submit(record)         # resolves once the record is on disk (fsynced)
    spool.close()                      # writes what is queued, seals the active segment

``submit`` only encodes the record and puts it on a queue: nothing blocks the
event loop. One thread drains the queue, writes everything waiting with one
``write`` and one ``fsync`` (group commit: records that arrive while a batch
is being written share the next fsync; while records keep arriving together,
fsyncs are spaced by ``fsync_interval_ms`` to let batches grow, and a lone
record is written at once), then resolves the waiting futures on their loops. Segments rotate at ``segment_bytes``; the
:class:`~lmdeck.tracing.segments.SegmentLog` tells the store writer how far
each one is durable. A process that dies mid-write leaves at most one torn last
line, which replay skips: the record it held had not been acknowledged.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import BinaryIO

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.codec import encode
from lmdeck.tracing.segments import SegmentLog, existing_segments, segment_name

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"

_Item = tuple[bytes, asyncio.Future[None] | None, asyncio.AbstractEventLoop | None]
_STOP = object()


class TraceSpoolError(RuntimeError):
    """The spool cannot be used; the message says what to do."""


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            count += chunk.count(b"\n")
    return count


class TraceSpool:
    """Durable, append-only, group-committed storage of trace records (see the module docs).

    >>> spool = TraceSpool(Path("/tmp/spool"))  # doctest: +SKIP
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync_interval_ms: float = 0.0,
        segment_bytes: int = 8 << 20,
        fsync: bool = True,
        segments: SegmentLog | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.fsync_interval = fsync_interval_ms / 1000.0
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.segments = segments or SegmentLog()
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._lock_file: BinaryIO | None = None
        self._file: BinaryIO | None = None
        self._seq = 0
        self._size = 0
        self._closed = False
        #: Records handed to :meth:`submit` / written to disk; each counter has one writing thread.
        self.submitted = 0
        self.written = 0
        self.batches = 0

    @property
    def is_open(self) -> bool:
        return self._thread is not None

    @property
    def queued(self) -> int:
        """Records submitted but not yet written."""
        return self.submitted - self.written

    def open(self) -> None:
        """Lock the directory, register the segments left by an earlier process, start writing."""
        with self._open_lock:
            if self._thread is not None:
                return
            if self._closed:
                raise TraceSpoolError(f"the trace spool at {self.directory} is closed; build a new one to reopen it")
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_directory()
            last = 0
            for seq, path in existing_segments(self.directory):
                size = path.stat().st_size
                self.segments.add(path, seq=seq, durable=size, sealed=True, recovered=True)
                self.segments.count_recovered(_count_lines(path))
                last = seq
            self._start_segment(last + 1)
            self._thread = threading.Thread(target=self._run, name="lmdeck-trace-spool", daemon=True)
            self._thread.start()

    def _lock_directory(self) -> None:
        lock = os.fdopen(os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+b")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().decode(errors="replace").strip() or "unknown"
            lock.close()
            if holder == str(os.getpid()):
                raise TraceSpoolError(
                    f"the trace spool at {self.directory} is in use by another gateway in this process; "
                    "stop it first (run each app's lifespan) or give this one its own data_dir"
                ) from None
            raise TraceSpoolError(
                f"the trace spool at {self.directory} is in use by another lmdeck process (pid {holder}); "
                "stop that process or give this one its own data_dir"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()).encode())
        lock.flush()
        self._lock_file = lock

    def _start_segment(self, seq: int) -> None:
        path = self.directory / segment_name(seq)
        # Owner-only whatever the umask: segments hold request and response bodies.
        self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab", buffering=0)
        self._seq = seq
        self._size = 0
        self.segments.add(path, seq=seq)
        self._sync_directory()

    def _sync_directory(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _seal(self) -> None:
        """Stop appending to the active segment; the store writer may delete it once stored."""
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass
        self.segments.seal(self._seq)

    def submit(self, record: TraceRecord) -> asyncio.Future[None]:
        """Queue ``record``; the future resolves once it is durable (or fails with the write error)."""
        if self._thread is None:
            self.open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.submitted += 1
        self._queue.put((encode(record), future, loop))
        return future

    def submit_nowait(self, record: TraceRecord) -> None:
        """Queue ``record`` from any thread, without waiting for it to be durable."""
        if self._thread is None:
            self.open()
        self.submitted += 1
        self._queue.put((encode(record), None, None))

    def close(self, timeout: float = 30.0) -> None:
        """Write and fsync everything queued, seal the active segment, release the directory."""
        with self._open_lock:
            thread, self._thread = self._thread, None
            self._closed = True
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
            if thread.is_alive():
                log.error("the trace spool did not finish writing within %.0fs", timeout)
        self._seal()
        self.segments.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _run(self) -> None:
        last_sync = 0.0
        shared = False
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Item] = [first]  # type: ignore[list-item]
            # Wait for company only when records have been arriving together: a lone
            # request is written at once instead of paying the window in latency.
            deadline = last_sync + self.fsync_interval if shared else 0.0
            while True:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._write(batch)
            shared = len(batch) > 1
            last_sync = time.monotonic()

    def _write(self, batch: list[_Item]) -> None:
        data = b"".join(line for line, _, _ in batch)
        error: BaseException | None = None
        try:
            if self._file is None:
                self._start_segment(self._seq + 1)
            assert self._file is not None
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]
            if self.fsync:
                os.fsync(self._file.fileno())
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            error = TraceSpoolError(
                f"cannot write the trace spool at {self.directory}: {reason}; "
                "free disk space or point data_dir at a writable disk"
            )
            log.error("%s", error)
            # Whatever was half-written stays past the durable mark; continue in a fresh segment.
            self._seal()
        else:
            self._size += len(data)
            self.segments.advance(self._seq, self._size, len(batch))
        self.written += len(batch)
        self.batches += 1
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = defaultdict(list)
        for _, future, loop in batch:
            if future is not None and loop is not None:
                by_loop[loop].append(future)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, futures, error)
            except RuntimeError:
                pass  # the loop has closed: nobody is waiting any more
        if error is None and self._size >= self.segment_bytes:
            self._seal()
            try:
                self._start_segment(self._seq + 1)
            except OSError as exc:
                # The next batch tries again, and fails its requests if it cannot.
                log.error("cannot start a new spool segment in %s: %s", self.directory, exc)


def spool_holder(directory: Path) -> str | None:
    """The pid of the process holding the spool lock in ``directory``, or None when it is free.

    A probe for start-up checks: it takes and drops the lock, so a caller that finds it free must still
    let :meth:`TraceSpool.open` take it for good.
    """
    path = directory / LOCK_NAME
    if not path.exists():
        return None
    with path.open("rb") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock.read().decode(errors="replace").strip() or "unknown"
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return None
