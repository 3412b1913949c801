"""The store writer: batching, replay exactly once, torn lines, an absent store, refused records."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest
from sqlalchemy.exc import DataError, OperationalError

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.codec import encode
from lmdeck.tracing.query import TracePage, TraceQuery
from lmdeck.tracing.segments import SegmentLog, existing_segments, segment_name
from lmdeck.tracing.spool import TraceSpool
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.writer import StoreWriter

#: How long the writer may take to catch up: generous, a loaded machine only makes it slower.
PATIENCE_S = 120.0


class RecordingStore:
    """A real SQL store that remembers each insert's size and can fail on demand."""

    def __init__(self, inner: SQLTraceStore) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.outages = 0
        self.refused: set[str] = set()

    def insert(self, records: Sequence[TraceRecord]) -> None:
        if self.outages:
            self.outages -= 1
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        if any(r.id in self.refused for r in records):
            raise DataError("INSERT", {}, Exception("value too long"))
        self.batches.append(len(records))
        self.inner.insert(records)

    def get(self, id: str) -> TraceRecord | None:
        return self.inner.get(id)

    def query(self, query: TraceQuery) -> TracePage:
        return self.inner.query(query)


@pytest.fixture
def sql_store(tmp_path: Path) -> Iterator[SQLTraceStore]:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    yield SQLTraceStore(db)
    db.dispose()


def write_segment(directory: Path, seq: int, records: list[TraceRecord], tail: bytes = b"") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / segment_name(seq)
    path.write_bytes(b"".join(encode(r) for r in records) + tail)
    return path


def run_until_stored(directory: Path, store: RecordingStore | SQLTraceStore, batch_size: int = 500) -> StoreWriter:
    """Open a spool on ``directory`` as a restarted process would, and let the writer catch up."""
    spool = TraceSpool(directory)
    spool.open()
    writer = StoreWriter(spool.segments, store, batch_size=batch_size, rejected_path=directory / "rejected.jsonl")
    writer.start()
    try:
        assert writer.wait_idle(PATIENCE_S), "the writer did not catch up"
    finally:
        spool.close()
        assert writer.stop(PATIENCE_S)
    return writer


def test_replay_stores_each_record_once_and_removes_the_segments(tmp_path: Path, sql_store: SQLTraceStore) -> None:
    directory = tmp_path / "spool"
    records = [TraceRecord(route="demo") for _ in range(120)]
    write_segment(directory, 1, records[:70])
    write_segment(directory, 2, records[70:])
    # A crash after the first insert but before the segments were removed: half is stored already.
    sql_store.insert(records[:50])
    saved = tmp_path / "copy"
    shutil.copytree(directory, saved)

    run_until_stored(directory, sql_store)
    assert sql_store.count() == 120
    assert existing_segments(directory) == []

    # Replaying the very same segments again changes nothing.
    for path in saved.iterdir():
        shutil.copy(path, directory / path.name)
    run_until_stored(directory, sql_store)
    assert sql_store.count() == 120
    stored = {r.id for r in sql_store.query(TraceQuery(limit=1000)).records}
    assert stored == {r.id for r in records}


def test_a_torn_last_line_is_skipped(tmp_path: Path, sql_store: SQLTraceStore) -> None:
    directory = tmp_path / "spool"
    records = [TraceRecord() for _ in range(5)]
    torn = encode(TraceRecord())[:37]
    write_segment(directory, 3, records, tail=torn)
    writer = run_until_stored(directory, sql_store)
    assert sql_store.count() == 5
    assert writer.replayed_torn == 1
    assert existing_segments(directory) == []


def test_a_damaged_line_in_the_middle_does_not_stop_the_rest(tmp_path: Path, sql_store: SQLTraceStore) -> None:
    directory = tmp_path / "spool"
    good = [TraceRecord() for _ in range(4)]
    path = write_segment(directory, 1, good[:2])
    path.write_bytes(path.read_bytes() + b'{"not": "a record"}\n' + b"".join(encode(r) for r in good[2:]))
    writer = run_until_stored(directory, sql_store)
    assert sql_store.count() == 4
    assert writer.skipped == 1


def test_inserts_are_batched_up_to_batch_size(tmp_path: Path, sql_store: SQLTraceStore) -> None:
    directory = tmp_path / "spool"
    write_segment(directory, 1, [TraceRecord() for _ in range(95)])
    store = RecordingStore(sql_store)
    run_until_stored(directory, store, batch_size=10)
    assert sum(store.batches) == 95
    assert max(store.batches) == 10
    assert len(store.batches) == 10


async def test_live_records_flow_from_the_spool_to_the_store(tmp_path: Path, sql_store: SQLTraceStore) -> None:
    segments = SegmentLog()
    spool = TraceSpool(tmp_path / "spool", segment_bytes=2048, segments=segments)
    spool.open()
    writer = StoreWriter(segments, sql_store, batch_size=7)
    writer.start()
    records = [TraceRecord(route="live") for _ in range(60)]
    try:
        for record in records:
            await spool.submit(record)
        assert writer.wait_idle(PATIENCE_S)
    finally:
        spool.close()
        assert writer.stop(PATIENCE_S)
    assert sql_store.count() == 60
    assert writer.pending == 0
    # Sealed segments were deleted once stored; nothing is left on disk.
    assert existing_segments(spool.directory) == []


def test_an_absent_store_is_waited_for(tmp_path: Path, sql_store: SQLTraceStore) -> None:
    directory = tmp_path / "spool"
    write_segment(directory, 1, [TraceRecord() for _ in range(20)])
    store = RecordingStore(sql_store)
    store.outages = 3
    run_until_stored(directory, store)
    assert sql_store.count() == 20
    assert store.outages == 0


def test_a_refused_record_is_set_aside_and_the_rest_stored(tmp_path: Path, sql_store: SQLTraceStore) -> None:
    directory = tmp_path / "spool"
    records = [TraceRecord() for _ in range(10)]
    write_segment(directory, 1, records)
    store = RecordingStore(sql_store)
    store.refused = {records[4].id}
    writer = run_until_stored(directory, store)
    assert sql_store.count() == 9
    assert writer.rejected == 1
    lines = (directory / "rejected.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["record"]["id"] for line in lines] == [records[4].id]


def test_stop_gives_up_on_an_absent_store_and_keeps_the_spool(tmp_path: Path, sql_store: SQLTraceStore) -> None:
    directory = tmp_path / "spool"
    write_segment(directory, 1, [TraceRecord() for _ in range(3)])
    store = RecordingStore(sql_store)
    store.outages = 10**6
    spool = TraceSpool(directory)
    spool.open()
    writer = StoreWriter(spool.segments, store, retry_max_s=0.05)
    writer.start()
    spool.close()
    assert writer.stop(timeout=0.3) is False
    assert sql_store.count() == 0
    assert len(existing_segments(directory)) >= 1


def test_replay_is_exactly_once_on_each_backend(tmp_path: Path, store: SQLTraceStore) -> None:
    directory = tmp_path / "spool"
    records = [TraceRecord(route="demo", tags=["replayed"]) for _ in range(30)]
    write_segment(directory, 1, records)
    store.insert(records[:10])
    run_until_stored(directory, store, batch_size=8)
    write_segment(directory, 5, records[5:25])
    run_until_stored(directory, store, batch_size=8)
    assert store.count() == 30
    assert len(store.query(TraceQuery(tag="replayed", limit=100)).records) == 30
