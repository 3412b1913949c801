"""The spool's segment files and what is known about each: shared by the spool and the store writer.

The spool appends to one *active* segment and announces, after each fsync, how
far the file is durable; it *seals* a segment when rotating or closing. The store
writer reads each segment up to its durable length, in order, and deletes a
sealed one once every record in it is stored. Segments found on disk at start
(left by an earlier process) are sealed from the outset and replayed first.

    log = SegmentLog()
    seg = log.add(directory / segment_name(1))
    log.advance(seg.seq, durable=4096, records=10)     # spool thread
    ready = log.wait_for(seg.seq, 0, timeout=1.0)      # store writer thread
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

SEGMENT_NAME = re.compile(r"^(\d{10})\.jsonl$")


def segment_name(seq: int) -> str:
    return f"{seq:010d}.jsonl"


def existing_segments(directory: Path) -> list[tuple[int, Path]]:
    """Segment files in ``directory``, oldest first."""
    found = []
    for path in directory.iterdir():
        match = SEGMENT_NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


@dataclass
class Segment:
    """One segment file: ``durable`` bytes of it may be read; ``sealed`` means it will not grow."""

    seq: int
    path: Path
    durable: int = 0
    sealed: bool = False
    recovered: bool = False


class SegmentLog:
    """Thread-safe bookkeeping of the segments, with a condition the store writer waits on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._segments: dict[int, Segment] = {}
        self._closing = False
        #: Records durable in the spool (counting those found at start); only ever grows.
        self.durable_records = 0

    def add(self, path: Path, *, seq: int, durable: int = 0, sealed: bool = False, recovered: bool = False) -> Segment:
        with self._cond:
            segment = Segment(seq, path, durable, sealed, recovered)
            self._segments[seq] = segment
            self._cond.notify_all()
            return segment

    def advance(self, seq: int, durable: int, records: int) -> None:
        with self._cond:
            self._segments[seq].durable = durable
            self.durable_records += records
            self._cond.notify_all()

    def count_recovered(self, records: int) -> None:
        with self._cond:
            self.durable_records += records

    def seal(self, seq: int) -> None:
        with self._cond:
            if seq in self._segments:
                self._segments[seq].sealed = True
            self._cond.notify_all()

    def remove(self, seq: int) -> None:
        with self._cond:
            self._segments.pop(seq, None)

    def close(self) -> None:
        """No more segments will be added or grow: waiters stop waiting for new data."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    @property
    def closing(self) -> bool:
        return self._closing

    def segments(self) -> list[Segment]:
        with self._cond:
            return [self._segments[s] for s in sorted(self._segments)]

    def first_after(self, seq: int) -> Segment | None:
        with self._cond:
            later = [s for s in self._segments if s > seq]
            return self._segments[min(later)] if later else None

    def get(self, seq: int) -> Segment | None:
        with self._cond:
            return self._segments.get(seq)

    def has_news(self, seq: int, offset: int) -> bool:
        """Is there anything to do past (seq, offset): more durable bytes, a seal, or a later segment?"""
        segment = self._segments.get(seq)
        if segment is None:
            return any(s > seq for s in self._segments)
        if segment.durable > offset or segment.sealed:
            return True
        return any(s > seq for s in self._segments)

    def wait_for(self, seq: int, offset: int, timeout: float) -> bool:
        """Block until :meth:`has_news` or closing, at most ``timeout`` seconds; True if there is news."""
        with self._cond:
            self._cond.wait_for(lambda: self._closing or self.has_news(seq, offset), timeout)
            return self.has_news(seq, offset)
