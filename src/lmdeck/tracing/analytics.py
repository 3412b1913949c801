"""The analytics pool: trace queries (spend, summaries, listings, search) off the event loop, bounded.

    pool = AnalyticsPool(db, workers=2, timeout_s=10.0, max_waiting=32, processes=True)
    page = await pool.run(query_traces, TraceQuery(q="refund"))   # query_traces(db, query) in a worker
    # AnalyticsUnavailable after timeout_s, or at once when workers + max_waiting queries are in flight

A job is a module-level function called as ``fn(db, *args)``. With ``processes``
(the default for a database on disk or a server) it runs in one of ``workers``
separate processes, each with its own connection to the same database and the
lowest CPU priority (Linux's ``SCHED_IDLE``: they run only on CPU time nothing
else wants; ``nice`` elsewhere): the Python work of a big query (merging sketches,
decoding rows) never holds the gateway's interpreter lock, and the operating
system serves the gateway first when the CPU is short. Otherwise (an in-memory
database, or ``processes=False``) jobs run in threads of the pool's own, never in
the event loop's default thread pool, so a burst of dashboard queries cannot take
the threads request handling needs. Either way at most ``workers`` run at once.
Each query has a
deadline: past it the caller gets :class:`AnalyticsUnavailable` (the API answers
503) and the query itself is stopped in the database: SQLite's progress
handler interrupts it, PostgreSQL's ``statement_timeout`` (``SET LOCAL``, set
before each statement of the query's transaction) cancels it. A result that
arrives after its deadline is dropped.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, event

from lmdeck.child_processes import exit_with_parent
from lmdeck.db import Database

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
    """At most ``workers`` analytics jobs at once, ``max_waiting`` more queued, each ``timeout_s`` at most."""

    def __init__(
        self,
        db: Database,
        *,
        workers: int = 2,
        timeout_s: float = 10.0,
        max_waiting: int = 32,
        processes: bool = True,
        nice: int = 10,
    ) -> None:
        if workers < 1 or timeout_s <= 0 or max_waiting < 0:
            raise ValueError("an analytics pool needs workers >= 1, timeout_s > 0 and max_waiting >= 0")
        self.db = db
        self.workers = workers
        self.timeout_s = timeout_s
        self.max_waiting = max_waiting
        #: Separate processes, unless the database lives in this process's memory.
        self.processes = processes and not db.in_memory
        self.nice = nice
        self._executor: Executor | None = None
        #: A first, empty job in a new process pool: done once a worker has started.
        self._warmup: asyncio.Future[None] | None = None
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Jobs running or queued (a job that timed out counts until its worker lets go)."""
        return self._in_flight

    def _pool(self) -> Executor:
        with self._lock:
            if self._executor is None:
                if self.processes:
                    self._executor = ProcessPoolExecutor(
                        max_workers=self.workers,
                        mp_context=multiprocessing.get_context("spawn"),
                        initializer=_start_worker,
                        initargs=(self.db.url, self.nice, os.getpid()),
                    )
                else:
                    install_deadlines(self.db.engine)
                    self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="lmdeck-analytics")
            return self._executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(db, *args)`` in the pool; raises :class:`AnalyticsUnavailable` when busy or past the timeout."""
        with self._lock:
            if self._in_flight >= self.workers + self.max_waiting:
                raise AnalyticsUnavailable(
                    f"{self._in_flight} analytics queries are already running or queued; retry shortly, "
                    "or raise tracing.analytics_workers"
                )
            self._in_flight += 1
        try:
            if self.processes:
                await self._workers_started()
        except BaseException:
            self._release()
            raise
        # The clock starts once a worker is there: starting worker processes (seconds on a busy
        # machine) is not the query's time.
        deadline = time.monotonic() + self.timeout_s
        try:
            if self.processes:
                future = asyncio.get_running_loop().run_in_executor(
                    self._pool(), _call_in_worker, fn, args, deadline, self.timeout_s
                )
            else:
                future = asyncio.get_running_loop().run_in_executor(
                    self._pool(), _call, self.db, fn, args, deadline, self.timeout_s
                )
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            future.add_done_callback(_retrieve)
            raise _timed_out(self.timeout_s) from None

    async def _workers_started(self) -> None:
        """Wait (at most :data:`WORKER_START_S`) for the process pool's first worker to be up."""
        loop = asyncio.get_running_loop()
        if self._warmup is None or self._warmup.get_loop() is not loop:
            self._warmup = loop.run_in_executor(self._pool(), _noop)
        try:
            await asyncio.wait_for(asyncio.shield(self._warmup), WORKER_START_S)
        except TimeoutError:
            raise AnalyticsUnavailable(
                f"the analytics worker processes did not start within {WORKER_START_S:.0f}s; retry shortly, "
                "or set tracing.analytics_processes to false"
            ) from None

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    async def start(self) -> None:
        """Start the worker processes in the background, so the first query need not wait for them."""
        if self.processes and self._warmup is None:
            self._warmup = asyncio.get_running_loop().run_in_executor(self._pool(), _noop)
            self._warmup.add_done_callback(_retrieve)

    async def stop(self) -> None:
        """:meth:`close`, as a service of the gateway."""
        self.close()

    def close(self) -> None:
        """Stop taking jobs; running ones finish in their workers."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._warmup = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


#: How long a query waits for the analytics worker processes to start, before its own timeout begins.
WORKER_START_S = 120.0


def _noop() -> None:
    """The first job of a new process pool: returns once a worker has started."""


def _timed_out(timeout_s: float) -> AnalyticsUnavailable:
    return AnalyticsUnavailable(
        f"the analytics query took longer than {timeout_s:g}s and was stopped; narrow the window or "
        "the filters, or raise tracing.analytics_timeout_s"
    )


def _call(db: Database, fn: Callable[..., T], args: tuple[Any, ...], deadline: float, timeout_s: float) -> T:
    """Run one job under ``deadline`` (``time.monotonic()``, the same clock in every process of the machine)."""
    if time.monotonic() > deadline:
        raise _timed_out(timeout_s)  # waited in the queue past its deadline: never started
    _local.deadline = deadline
    try:
        result = fn(db, *args)
    except Exception:
        if time.monotonic() > deadline:
            raise _timed_out(timeout_s) from None
        raise
    finally:
        _local.deadline = None
    if time.monotonic() > deadline:
        raise _timed_out(timeout_s)  # an interrupted query may have returned a partial answer
    return result


#: The worker process's own connection to the database (set by :func:`_start_worker`).
_worker_db: Database | None = None


def _start_worker(url: str, nice: int, parent_pid: int) -> None:
    global _worker_db
    exit_with_parent(parent_pid)
    if nice:
        _lower_priority(nice)
    _worker_db = Database(url)
    install_deadlines(_worker_db.engine)


def _lower_priority(nice: int) -> None:
    """Run this process only on CPU time the gateway leaves: ``SCHED_IDLE`` where the system has it (Linux),
    else ``nice``. A query starved of CPU still ends at its deadline: the gateway answers 503 when it passes."""
    try:
        os.nice(nice)
    except OSError:
        pass
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass  # not allowed here (a container's seccomp profile): nice it is


def _call_in_worker(fn: Callable[..., T], args: tuple[Any, ...], deadline: float, timeout_s: float) -> T:
    if _worker_db is None:
        raise RuntimeError("the analytics worker has no database: it was not started by AnalyticsPool")
    return _call(_worker_db, fn, args, deadline, timeout_s)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # consumed, so a late failure is not reported as never retrieved
