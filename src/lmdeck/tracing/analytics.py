"""The analytics pool: trace queries (spend, summaries, listings, search) off the event loop, bounded.

    pool = AnalyticsPool(workers=2, timeout_s=10.0, max_waiting=32)
    report = await pool.run(lambda: reports.report(by="team", period="month", now=time.time()))
    # AnalyticsUnavailable after timeout_s, or at once when workers + max_waiting queries are in flight

Analytics queries run in their own threads (``workers`` at most at a time), never
in the event loop's default thread pool, so a burst of dashboard queries cannot
take the threads that request handling needs, and never more than ``workers``
of them compete with the gateway for the CPU and the database. Each query has a
deadline: past it the caller gets :class:`AnalyticsUnavailable` (the API answers
503) and the query itself is stopped in the database: SQLite's progress
handler interrupts it, PostgreSQL's ``statement_timeout`` (``SET LOCAL``, set
before each statement of the query's transaction) cancels it. A result that
arrives after its deadline is dropped.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, event

T = TypeVar("T")

#: How often (in SQLite virtual machine instructions) a running query checks its deadline.
_PROGRESS_STEPS = 20_000

_local = threading.local()
_installed: weakref.WeakSet[Engine] = weakref.WeakSet()
_install_lock = threading.Lock()


class AnalyticsUnavailable(Exception):
    """An analytics query timed out or could not start; the message says which and what to do."""


def _deadline() -> float | None:
    deadline: float | None = getattr(_local, "deadline", None)
    return deadline


def _past_deadline() -> int:
    deadline = _deadline()
    return 1 if deadline is not None and time.monotonic() > deadline else 0


def install_deadlines(engine: Engine) -> None:
    """Make queries on ``engine`` stop at the deadline of the analytics query running them (once per engine)."""
    with _install_lock:
        if engine in _installed:
            return
        _installed.add(engine)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "checkout")
        def _progress(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            dbapi_connection.set_progress_handler(_past_deadline, _PROGRESS_STEPS)

    elif engine.dialect.name == "postgresql":

        @event.listens_for(engine, "before_cursor_execute")
        def _timeout(_conn: Any, cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
            deadline = _deadline()
            if deadline is not None:
                left_ms = max(int((deadline - time.monotonic()) * 1000), 1)
                cursor.execute(f"SET LOCAL statement_timeout = {left_ms}")


class AnalyticsPool:
    """At most ``workers`` analytics queries at once, ``max_waiting`` more queued, each ``timeout_s`` at most."""

    def __init__(self, *, workers: int = 2, timeout_s: float = 10.0, max_waiting: int = 32) -> None:
        if workers < 1 or timeout_s <= 0 or max_waiting < 0:
            raise ValueError("an analytics pool needs workers >= 1, timeout_s > 0 and max_waiting >= 0")
        self.workers = workers
        self.timeout_s = timeout_s
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmdeck-analytics")
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Queries running or queued (a query that timed out counts until its thread lets go)."""
        return self._in_flight

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the pool; raises :class:`AnalyticsUnavailable` when busy or past the timeout."""
        with self._lock:
            if self._in_flight >= self.workers + self.max_waiting:
                raise AnalyticsUnavailable(
                    f"{self._in_flight} analytics queries are already running or queued; retry shortly, "
                    "or raise tracing.analytics_workers"
                )
            self._in_flight += 1
        deadline = time.monotonic() + self.timeout_s
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn, deadline)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            future.add_done_callback(_retrieve)
            raise self._timed_out() from None

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _timed_out(self) -> AnalyticsUnavailable:
        return AnalyticsUnavailable(
            f"the analytics query took longer than {self.timeout_s:g}s and was stopped; narrow the window or "
            "the filters, or raise tracing.analytics_timeout_s"
        )

    def _call(self, fn: Callable[[], T], deadline: float) -> T:
        if time.monotonic() > deadline:
            raise self._timed_out()  # waited in the queue past its deadline: never started
        _local.deadline = deadline
        try:
            result = fn()
        except Exception:
            if time.monotonic() > deadline:
                raise self._timed_out() from None
            raise
        finally:
            _local.deadline = None
        if time.monotonic() > deadline:
            raise self._timed_out()  # an interrupted query may have returned a partial answer
        return result

    def close(self) -> None:
        """Stop taking queries; running ones finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # consumed, so a late failure is not reported as never retrieved
