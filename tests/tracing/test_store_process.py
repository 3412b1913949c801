"""The trace store process: spooled traces inserted by a separate process, exactly once, surviving its death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.codec import encode
from lmdeck.tracing.query import TraceQuery
from lmdeck.tracing.segments import existing_segments
from lmdeck.tracing.sink import DurableTraceSink
from lmdeck.tracing.spool import TraceSpool
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.store_lines import StoreUnavailable
from lmdeck.tracing.store_process import PROCESS_NAME, ProcessStartFailed, StoreProcess
from lmdeck.tracing.writer import StoreWriter

#: How long a process may take to start or to go: generous, a loaded machine only makes it slower.
PATIENCE_S = 120.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


def _children_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if comm == name and ppid == os.getpid():
            found.append(int(entry.name))
    return found


def _gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat[stat.rindex(")") + 2] == "Z":
            return True
        time.sleep(0.05)
    return False


async def test_the_sink_stores_through_a_separate_process(tmp_path: Path, db: Database) -> None:
    settings = Settings(data_dir=tmp_path)
    sink = DurableTraceSink.from_settings(settings, db)
    assert isinstance(sink.writer.process, StoreProcess)
    await sink.start()
    records = [TraceRecord(route="separate") for _ in range(40)]
    try:
        for record in records:
            await sink.submit(record)
        assert await sink.stored(PATIENCE_S)
        if sys.platform == "linux":
            assert len(_children_named(PROCESS_NAME)) == 1
    finally:
        await sink.stop()
    store = SQLTraceStore(db)
    assert {r.id for r in store.query(TraceQuery(limit=100)).records} == {r.id for r in records}
    # The rollups are kept by the process too.
    assert sink.writer.stored == 40 and sink.depth == 0
    if sys.platform == "linux":
        assert _children_named(PROCESS_NAME) == []


def test_in_memory_databases_and_the_setting_keep_the_thread(tmp_path: Path, db: Database) -> None:
    memory = Database("sqlite://")
    assert DurableTraceSink.from_settings(Settings(data_dir=tmp_path), memory).writer.process is None
    off = Settings(data_dir=tmp_path, tracing={"writer_process": False})
    assert DurableTraceSink.from_settings(off, db).writer.process is None


@pytest.mark.skipif(sys.platform != "linux", reason="finds the process through /proc")
def test_a_killed_store_process_is_replaced_and_nothing_is_stored_twice(tmp_path: Path, db: Database) -> None:
    process = StoreProcess(db.url)
    store = SQLTraceStore(db)
    try:
        first = [TraceRecord(route="before") for _ in range(10)]
        assert process.store([encode(r) for r in first]).stored == 10
        (pid,) = _children_named(PROCESS_NAME)
        os.kill(pid, signal.SIGKILL)
        assert _gone(pid, PATIENCE_S)
        second = [TraceRecord(route="after") for _ in range(10)]
        lines = [encode(r) for r in first + second]
        with pytest.raises(StoreUnavailable):
            process.store(lines)  # the dead process's pipe answers end-of-file once; the retry starts a new one
        done = process.store(lines)
        assert done.stored == 20  # insert-or-ignore: the first ten are not stored again
        assert store.count() == 20
    finally:
        process.close()


@pytest.mark.skipif(sys.platform != "linux", reason="finds the process through /proc")
def test_the_store_process_ends_when_the_serving_process_is_killed(tmp_path: Path, db: Database) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from lmdeck.protocol.traces import TraceRecord
        from lmdeck.tracing.codec import encode
        from lmdeck.tracing.store_process import StoreProcess
        process = StoreProcess({db.url!r})
        process.store([encode(TraceRecord())])
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        children = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _parent_of(int(p.name)) == parent.pid and _comm(int(p.name)) == PROCESS_NAME
        ]
        assert len(children) == 1
        parent.kill()
        parent.wait(PATIENCE_S)
        assert _gone(children[0], PATIENCE_S), "the store process outlived its serving process"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _stat(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""


def _parent_of(pid: int) -> int:
    stat = _stat(pid)
    return int(stat[stat.rindex(")") + 2 :].split()[1]) if stat else -1


def _comm(pid: int) -> str:
    stat = _stat(pid)
    return stat[stat.index("(") + 1 : stat.rindex(")")] if stat else ""


@pytest.mark.skipif(sys.platform != "linux", reason="finds the process through /proc")
def test_stopping_while_the_store_is_away_keeps_the_spool_and_ends_the_process(tmp_path: Path) -> None:
    unreachable = tmp_path / "a-directory.db"
    unreachable.mkdir()  # SQLite cannot open a directory: every insert fails as a lost connection would
    spool = TraceSpool(tmp_path / "spool")
    spool.open()
    writer = StoreWriter(spool.segments, SQLTraceStore(Database(f"sqlite:///{unreachable}")))
    writer.process = StoreProcess(f"sqlite:///{unreachable}")
    writer.start()
    spool.submit_nowait(TraceRecord(route="kept"))
    spool.close()
    end = time.monotonic() + PATIENCE_S
    while not _children_named(PROCESS_NAME) and time.monotonic() < end:
        time.sleep(0.05)
    assert _children_named(PROCESS_NAME), "the store process never started"
    assert writer.stop(timeout=1.0) is False
    # The writer's thread gives up at the deadline and closes the process on its way out.
    while _children_named(PROCESS_NAME) and time.monotonic() < end:
        time.sleep(0.05)
    assert _children_named(PROCESS_NAME) == []
    assert writer.stored == 0
    assert len(existing_segments(tmp_path / "spool")) == 1  # the trace waits in the spool for the next start


def test_a_store_process_that_cannot_start_leaves_the_inserts_in_the_thread(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: StoreProcess) -> None:
        raise ProcessStartFailed("OSError: [Errno 11] Resource temporarily unavailable")

    monkeypatch.setattr(StoreProcess, "_connection", refuse)
    sink = DurableTraceSink.from_settings(Settings(data_dir=tmp_path), db)
    sink.open()
    records = [TraceRecord(route="fallback") for _ in range(5)]
    try:
        for record in records:
            sink.spool.submit_nowait(record)
        assert sink.wait_stored(PATIENCE_S)
    finally:
        assert sink.close()
    assert sink.writer.process is None
    assert SQLTraceStore(db).count() == 5
