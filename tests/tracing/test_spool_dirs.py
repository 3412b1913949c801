"""Worker spools: which are left over for the coming run, and their replay into the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.spool import TraceSpool
from lmdeck.tracing.spool_dirs import orphan_spools, replay_leftovers, spool_holders, worker_spool_dir
from lmdeck.tracing.sql_store import SQLTraceStore


def leave_spooled(directory: Path, records: list[TraceRecord]) -> None:
    """Spool ``records`` durably, as a process that died before its store writer caught up leaves them."""
    spool = TraceSpool(directory)
    spool.open()

    async def submit_all() -> None:
        await asyncio.gather(*(spool.submit(r) for r in records))

    asyncio.run(submit_all())
    spool.close()


def test_orphans_are_the_spools_the_coming_run_does_not_open(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    for directory in (root, worker_spool_dir(root, 0), worker_spool_dir(root, 1), worker_spool_dir(root, 3)):
        leave_spooled(directory, [TraceRecord(route="demo")])
    (root / "worker-9").mkdir()  # no segments: nothing to replay
    assert orphan_spools(root, workers=1) == [root / "worker-0", root / "worker-1", root / "worker-3"]
    assert orphan_spools(root, workers=2) == [root, root / "worker-3"]
    assert orphan_spools(root, workers=4) == [root]


def test_a_leftover_worker_spool_is_stored_by_a_single_process_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    records = [TraceRecord(route="demo", client_request_id=f"left-{i}") for i in range(5)]
    leave_spooled(worker_spool_dir(settings.spool_dir, 1), records)
    db = Database(settings.store_url)
    db.migrate()
    try:
        assert replay_leftovers(settings, db, orphan_spools(settings.spool_dir, workers=1))
        store = SQLTraceStore(db)
        assert [store.get(r.id) is not None for r in records] == [True] * 5
        assert orphan_spools(settings.spool_dir, workers=1) == []  # stored once: nothing left to replay
    finally:
        db.dispose()


def test_a_live_worker_spool_names_its_holder(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    assert spool_holders(root) is None
    spool = TraceSpool(worker_spool_dir(root, 2))
    spool.open()
    try:
        assert spool_holders(root) is not None
    finally:
        spool.close()
    assert spool_holders(root) is None
