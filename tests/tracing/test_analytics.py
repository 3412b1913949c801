"""The analytics pool: bounded, a deadline per query, slow queries stopped in the database itself."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.tracing.analytics import AnalyticsPool, AnalyticsUnavailable, install_deadlines

#: Never ends on its own: only the deadline stops it.
ENDLESS = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
    "postgresql": "SELECT pg_sleep(3600)",
}


async def test_a_query_past_its_deadline_is_stopped_in_the_database(database: Database) -> None:
    install_deadlines(database.engine)
    pool = AnalyticsPool(workers=1, timeout_s=0.5)

    def endless() -> object:
        with database.engine.connect() as conn:
            return conn.execute(text(ENDLESS[database.engine.dialect.name])).scalar()

    with pytest.raises(AnalyticsUnavailable, match=r"longer than 0.5s.*analytics_timeout_s"):
        await pool.run(endless)

    def quick() -> int:
        with database.engine.connect() as conn:
            return int(conn.execute(text("SELECT 1")).scalar_one())

    # The one worker was freed by the database stopping the query, not by the query ending.
    pool.timeout_s = 60.0
    assert await pool.run(quick) == 1
    assert pool.in_flight == 0
    pool.close()


async def test_queries_beyond_the_workers_and_the_queue_are_refused_at_once() -> None:
    pool = AnalyticsPool(workers=1, timeout_s=60.0, max_waiting=1)
    release = threading.Event()
    started = threading.Event()

    def blocked() -> str:
        started.set()
        release.wait(30)
        return "done"

    first = asyncio.ensure_future(pool.run(blocked))
    await asyncio.to_thread(started.wait, 10)
    second = asyncio.ensure_future(pool.run(lambda: "queued"))
    await asyncio.sleep(0)
    with pytest.raises(AnalyticsUnavailable, match="already running or queued"):
        await pool.run(lambda: "refused")
    release.set()
    assert await first == "done" and await second == "queued"
    assert pool.in_flight == 0
    pool.close()


async def test_a_query_that_waited_past_its_deadline_never_starts() -> None:
    pool = AnalyticsPool(workers=1, timeout_s=0.3, max_waiting=4)
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    def blocked() -> None:
        started.set()
        release.wait(30)

    first = asyncio.ensure_future(pool.run(blocked))
    await asyncio.to_thread(started.wait, 10)
    with pytest.raises(AnalyticsUnavailable):
        await pool.run(lambda: ran.append("late"))
    release.set()
    with pytest.raises(AnalyticsUnavailable):
        await first
    await asyncio.sleep(0.05)
    pool.timeout_s = 60.0
    assert await pool.run(lambda: "next") == "next"
    assert ran == []
    pool.close()
