"""The analytics pool: bounded, a deadline per query, slow queries stopped in the database itself."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.tracing.analytics import AnalyticsPool, AnalyticsUnavailable
from lmdeck.tracing.signals import SignalError, summarize

MEMORY = Database("sqlite:///:memory:")

#: Never ends on its own: only the deadline stops it.
ENDLESS = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
    "postgresql": "SELECT pg_sleep(3600)",
}


def endless(db: Database) -> object:
    with db.engine.connect() as conn:
        return conn.execute(text(ENDLESS[db.engine.dialect.name])).scalar()


def quick(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT 1")).scalar_one())


def worker_pid(db: Database) -> int:
    return os.getpid()


def worker_scheduler(db: Database) -> int:
    return os.sched_getscheduler(0)


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_a_query_past_its_deadline_is_stopped_in_the_database(database: Database) -> None:
    pool = AnalyticsPool(database, workers=1, timeout_s=0.5, processes=False)
    with pytest.raises(AnalyticsUnavailable, match=r"longer than 0.5s.*analytics_timeout_s"):
        await pool.run(endless)
    # The one worker was freed by the database stopping the query, not by the query ending.
    pool.timeout_s = 60.0
    assert await pool.run(quick) == 1
    assert pool.in_flight == 0
    pool.close()


async def test_worker_processes_have_their_own_connection_and_deadlines(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    pool = AnalyticsPool(db, workers=1, timeout_s=60.0)
    assert pool.processes
    try:
        assert await pool.run(worker_pid) != os.getpid()
        assert await pool.run(quick) == 1
        pool.timeout_s = 1.0
        with pytest.raises(AnalyticsUnavailable, match="longer than 1s"):
            await pool.run(endless)
        pool.timeout_s = 60.0
        assert await pool.run(quick) == 1  # the worker process was freed by SQLite interrupting the query
        with pytest.raises(SignalError, match="step") as raised:
            await pool.run(summarize, 90, {"since": 0.0})
        assert raised.value.param == "step"
    finally:
        pool.close()
        db.dispose()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
async def test_worker_processes_run_at_idle_priority_and_still_answer_when_the_cpu_is_taken(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    pool = AnalyticsPool(db, workers=1, timeout_s=60.0)
    try:
        assert await pool.run(worker_scheduler) == os.SCHED_IDLE
        # Every core kept busy at normal priority: a query answers on what is left, or at its deadline with
        # AnalyticsUnavailable (the API's 503), never a hang.
        context = multiprocessing.get_context("spawn")
        hogs = [context.Process(target=spin, args=(5.0,)) for _ in range(os.cpu_count() or 1)]
        for hog in hogs:
            hog.start()
        try:
            pool.timeout_s = 2.0
            try:
                assert await asyncio.wait_for(pool.run(quick), 30) == 1
            except AnalyticsUnavailable as exc:
                assert "longer than 2s" in str(exc)
        finally:
            for hog in hogs:
                hog.terminate()
                hog.join()
    finally:
        pool.close()
        db.dispose()


def test_an_in_memory_store_is_queried_in_threads() -> None:
    assert not AnalyticsPool(Database("sqlite:///:memory:")).processes


async def test_queries_beyond_the_workers_and_the_queue_are_refused_at_once() -> None:
    pool = AnalyticsPool(MEMORY, workers=1, timeout_s=60.0, max_waiting=1)
    release = threading.Event()
    started = threading.Event()

    def blocked(_db: Database) -> str:
        started.set()
        release.wait(30)
        return "done"

    first = asyncio.ensure_future(pool.run(blocked))
    await asyncio.to_thread(started.wait, 10)
    second = asyncio.ensure_future(pool.run(lambda _db: "queued"))
    await asyncio.sleep(0)
    with pytest.raises(AnalyticsUnavailable, match="already running or queued"):
        await pool.run(lambda _db: "refused")
    release.set()
    assert await first == "done" and await second == "queued"
    assert pool.in_flight == 0
    pool.close()


async def test_a_query_that_waited_past_its_deadline_never_starts() -> None:
    pool = AnalyticsPool(MEMORY, workers=1, timeout_s=0.3, max_waiting=4)
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    def blocked(_db: Database) -> None:
        started.set()
        release.wait(30)

    first = asyncio.ensure_future(pool.run(blocked))
    await asyncio.to_thread(started.wait, 10)
    with pytest.raises(AnalyticsUnavailable):
        await pool.run(lambda _db: ran.append("late"))
    release.set()
    with pytest.raises(AnalyticsUnavailable):
        await first
    await asyncio.sleep(0.05)
    pool.timeout_s = 60.0
    assert await pool.run(lambda _db: "next") == "next"
    assert ran == []
    pool.close()
