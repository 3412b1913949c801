"""The store writer: a background thread that moves spooled traces into the store.

    writer = StoreWriter(spool.segments, SQLTraceStore(db), batch_size=500)
    writer.start()          # replays segments left by an earlier process, then follows the spool
    writer.wait_idle(5.0)   # everything durable so far is stored
    writer.stop()           # drains what the spool wrote, then returns

It reads each segment from disk up to its durable length and hands its lines, in
batches of up to ``batch_size``, to :func:`~lmdeck.tracing.store_lines.store_lines`
(in this thread, or in a :class:`~lmdeck.tracing.store_process.StoreProcess` when
given one), which decodes and inserts them with insert-or-ignore on the record id, so a record read twice (after a crash between an insert and the
deletion of its segment) is stored once. A sealed segment is deleted as soon
as all of it is stored. While the store is unreachable the writer retries with
backoff and the spool simply grows; a record the store rejects outright (bad
data, not a lost connection) is set aside in ``rejected.jsonl`` beside the
segments instead of blocking the ones behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from lmdeck.tracing.segments import Segment, SegmentLog
from lmdeck.tracing.store import TraceStore
from lmdeck.tracing.store_lines import Rejected, Stored, store_lines, transient
from lmdeck.tracing.store_process import ProcessStartFailed, StoreProcess

log = logging.getLogger(__name__)

READ_BYTES = 4 << 20
REJECTED_NAME = "rejected.jsonl"


@dataclass
class _Batch:
    lines: list[bytes] = field(default_factory=list)
    #: Segments fully read into this batch: deletable once it is stored.
    finished: list[Segment] = field(default_factory=list)


class _Stopped(Exception):
    """Told to stop while the store was still away."""


class StoreWriter:
    """Moves records from the spool's segments into a :class:`TraceStore` (see the module docs)."""

    def __init__(
        self,
        segments: SegmentLog,
        store: TraceStore,
        *,
        batch_size: int = 500,
        linger_s: float = 0.02,
        retry_max_s: float = 5.0,
        rejected_path: Path | None = None,
        process: StoreProcess | None = None,
    ) -> None:
        self.segments = segments
        self.store = store
        #: Where the lines are decoded and inserted: this process (None) or a store process.
        self.process = process
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.retry_max_s = retry_max_s
        self.rejected_path = rejected_path
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._idle = threading.Condition()
        self._seq = 0
        self._offset = 0
        #: Records stored (or set aside as rejected); only this writer's thread changes them.
        self.stored = 0
        self.rejected = 0
        self.skipped = 0
        self.inserts = 0
        self.replayed_torn = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        first = self.segments.first_after(0)
        self._seq = first.seq if first else 0
        self._thread = threading.Thread(target=self._run, name="lmdeck-trace-store-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Store everything the spool has made durable (until ``timeout``); True if nothing is left."""
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self.segments.close()
        thread.join(timeout + 1.0)
        return not thread.is_alive() and not self._pending_bytes()

    @property
    def pending(self) -> int:
        """Records durable in the spool and not yet stored."""
        return max(self.segments.durable_records - self.stored - self.skipped, 0)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every durable record is stored; False if ``timeout`` passes first."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._pending_bytes() or self.pending:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
        return True

    def _pending_bytes(self) -> bool:
        for segment in self.segments.segments():
            if segment.seq > self._seq or segment.durable > self._offset or segment.sealed:
                return True
        return False

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self.process is not None:
                self.process.close()  # the thread is its only user: it goes with the thread

    def _loop(self) -> None:
        while True:
            committed = (self._seq, self._offset)
            try:
                if not self._step():
                    return
            except Exception:
                # Never let the thread die: read again from the last stored position.
                self._seq, self._offset = committed
                log.exception("the trace store writer failed; retrying in 1s")
                if self._stop.is_set():
                    return
                time.sleep(1.0)

    def _step(self) -> bool:
        """One batch read and stored; False when the thread should end."""
        batch = self._fill()
        if batch.lines or batch.finished:
            try:
                self._store(batch.lines)
            except _Stopped:
                return False
            for segment in batch.finished:
                self._delete(segment)
            with self._idle:
                self._idle.notify_all()
            return True
        if self._stop.is_set():
            return False
        self.segments.wait_for(self._seq, self._offset, timeout=0.5)
        return True

    def _fill(self) -> _Batch:
        """Read up to ``batch_size`` records, lingering a moment for more when under load."""
        batch = _Batch()
        lingered = False
        while len(batch.lines) < self.batch_size:
            if self._read_some(batch):
                continue
            if lingered or not batch.lines or self._stop.is_set():
                break
            lingered = True
            self.segments.wait_for(self._seq, self._offset, timeout=self.linger_s)
        return batch

    def _read_some(self, batch: _Batch) -> bool:
        """Move the read position forward; False when there is nothing new to read right now."""
        segment = self.segments.get(self._seq)
        if segment is None:
            following = self.segments.first_after(self._seq)
            if following is None:
                return False
            self._seq, self._offset = following.seq, 0
            return True
        if self._offset < segment.durable:
            self._offset = self._read_lines(segment, batch)
            return True
        if segment.sealed:
            batch.finished.append(segment)
            following = self.segments.first_after(segment.seq)
            self._seq, self._offset = (following.seq, 0) if following else (segment.seq + 1, 0)
            return True
        return False

    def _read_lines(self, segment: Segment, batch: _Batch) -> int:
        """Whole lines from ``segment`` into ``batch``; the new read offset."""
        want = min(self.batch_size - len(batch.lines), 10_000)
        size = READ_BYTES
        with segment.path.open("rb") as file:
            while True:
                file.seek(self._offset)
                chunk = file.read(min(size, segment.durable - self._offset))
                end = chunk.rfind(b"\n")
                if end >= 0 or self._offset + len(chunk) >= segment.durable:
                    break
                size *= 2  # one line longer than a read: read more
        if end < 0:
            # Bytes after the last newline of a finished segment: a write cut short by a crash.
            self.replayed_torn += 1
            log.warning("ignoring a torn last line in %s (%d bytes)", segment.path.name, len(chunk))
            return segment.durable
        consumed = 0
        while consumed <= end and (len(batch.lines) < want or not consumed):
            stop = chunk.index(b"\n", consumed) + 1
            line = chunk[consumed:stop]
            consumed = stop
            if line.strip():
                batch.lines.append(line)
        return self._offset + consumed

    def _store(self, lines: list[bytes]) -> None:
        """Store ``lines``, setting aside what the store refuses and skipping what is not a record."""
        if not lines:
            return
        done = self._insert(lines)
        for reason in done.unreadable:
            log.warning("skipping an unreadable spool line: %s", reason)
        for rejected in done.rejected:
            self._reject(rejected)
        self.skipped += len(done.unreadable)
        self.rejected += len(done.rejected)
        self.stored += done.stored + len(done.rejected)

    def _insert(self, lines: list[bytes]) -> Stored:
        """One batch, retried with backoff while the store is away; raises what is not transient."""
        delay = 0.05
        while True:
            try:
                done = self._store_batch(lines)
                self.inserts += 1
                return done
            except Exception as exc:
                if not transient(exc):
                    raise
                if self._stop.is_set() and time.monotonic() > self._deadline:
                    log.error("stopping with %d traces not stored (kept in the spool): %s", len(lines), exc)
                    raise _Stopped from exc
                log.warning("cannot store %d traces yet, retrying in %.2fs: %s", len(lines), delay, exc)
                if self._stop.is_set():
                    time.sleep(min(delay, max(self._deadline - time.monotonic(), 0.0) + 0.01))
                else:
                    self._stop.wait(delay)  # told to stop: retry at once, then give up at the deadline
                delay = min(delay * 2, self.retry_max_s)

    def _store_batch(self, lines: list[bytes]) -> Stored:
        if self.process is not None:
            try:
                return self.process.store(lines)
            except ProcessStartFailed as exc:
                log.error("cannot start the trace store process (%s); storing traces in this thread instead", exc)
                self.process.close()
                self.process = None
        return store_lines(self.store, lines)

    def _reject(self, rejected: Rejected) -> None:
        if self.rejected_path is None:
            log.error("the store rejected trace %s and it is dropped: %s", rejected.id, rejected.error)
            return
        log.error("the store rejected trace %s (%s); kept in %s", rejected.id, rejected.error, self.rejected_path)
        entry = {"error": rejected.error, "record": rejected.record}
        with self.rejected_path.open("ab") as file:
            file.write(orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE))

    def _delete(self, segment: Segment) -> None:
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete stored spool segment %s: %s", segment.path, exc)
        self.segments.remove(segment.seq)
