"""The trace spool: group commit, durability before acknowledgement, rotation, the directory lock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing import spool as spool_module
from lmdeck.tracing.codec import decode, encode
from lmdeck.tracing.segments import existing_segments
from lmdeck.tracing.spool import LOCK_NAME, TraceSpool, TraceSpoolError


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[TraceSpool]:
    s = TraceSpool(tmp_path / "spool", fsync_interval_ms=2.0)
    s.open()
    yield s
    s.close()


def spooled_ids(directory: Path) -> list[str]:
    ids = []
    for _, path in existing_segments(directory):
        ids.extend(decode(line).id for line in path.read_bytes().splitlines())
    return ids


async def test_concurrent_submits_share_fsyncs(spool: TraceSpool, monkeypatch: pytest.MonkeyPatch) -> None:
    fsyncs = 0
    real_fsync = spool_module.os.fsync

    def counting_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", counting_fsync)
    records = [TraceRecord(route="demo") for _ in range(400)]
    await asyncio.gather(*(spool.submit(r) for r in records))
    assert spool.written == 400
    assert fsyncs == spool.batches
    assert spool.batches < 100, f"{spool.batches} fsyncs for 400 records: no group commit"
    assert spooled_ids(spool.directory) == [r.id for r in records]


async def test_a_record_is_acknowledged_only_after_its_fsync(
    spool: TraceSpool, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = threading.Event()
    release = threading.Event()
    real_fsync = spool_module.os.fsync

    def held_fsync(fd: int) -> None:
        entered.set()
        release.wait(120)  # held until the test has looked, however long that takes on a loaded machine
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", held_fsync)
    future = spool.submit(TraceRecord())
    assert await asyncio.to_thread(entered.wait, 60)
    await asyncio.sleep(0.01)
    assert not future.done(), "acknowledged before fsync returned"
    release.set()
    await asyncio.wait_for(future, 60)


async def test_segments_rotate_at_the_size_limit(tmp_path: Path) -> None:
    spool = TraceSpool(tmp_path / "spool", segment_bytes=1024)
    spool.open()
    try:
        records = [TraceRecord(metadata={"pad": "x" * 200}) for _ in range(30)]
        for record in records:
            await spool.submit(record)
    finally:
        spool.close()
    segments = existing_segments(spool.directory)
    assert len(segments) >= 5
    longest = max(len(encode(r)) for r in records)
    # Records are awaited one by one, so a segment passes the limit by at most one record.
    assert all(path.stat().st_size < 1024 + longest for _, path in segments)
    assert spooled_ids(spool.directory) == [r.id for r in records]
    assert all(s.sealed for s in spool.segments.segments())


async def test_a_write_failure_fails_the_waiting_requests(spool: TraceSpool, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module.os, "fsync", full_disk)
    with pytest.raises(TraceSpoolError, match="free disk space"):
        await asyncio.wait_for(spool.submit(TraceRecord()), 10)
    monkeypatch.undo()
    # The spool carries on in a fresh segment once the disk recovers.
    record = TraceRecord()
    await asyncio.wait_for(spool.submit(record), 10)
    assert record.id in spooled_ids(spool.directory)


def test_a_second_process_cannot_share_the_directory(spool: TraceSpool) -> None:
    other = TraceSpool(spool.directory)
    with pytest.raises(TraceSpoolError, match="in use by another gateway in this process"):
        other.open()
    (spool.directory / LOCK_NAME).write_text("999999")
    with pytest.raises(TraceSpoolError, match=r"another lmdeck process \(pid 999999\)"):
        other.open()


def test_segments_left_behind_are_registered_sealed(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    first = TraceSpool(directory)
    first.open()
    first.submit_nowait(TraceRecord())
    first.close()
    second = TraceSpool(directory)
    second.open()
    try:
        segments = second.segments.segments()
        assert segments[0].recovered and segments[0].sealed
        assert segments[-1].seq > segments[0].seq and not segments[-1].sealed
        assert second.segments.durable_records == 1
    finally:
        second.close()


def test_a_record_spooled_with_dollars_replays_in_micro_dollars() -> None:
    """A spool written before costs were micro-dollars still replays with its cost."""
    old = b'{"id": "old1", "trace_id": "t", "cost": 0.12, "status_code": 200}\n'
    assert decode(old).cost_micros == 120_000
    assert TraceRecord.from_dict({"id": "old2", "cost": 2.78e-17}).cost_micros == 0
    record = TraceRecord(id="new", cost_micros=123)
    assert decode(encode(record)).cost_micros == 123 and record.cost_usd == 0.000123
