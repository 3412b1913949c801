"""The trace store process: the store writer's inserts, off the serving process's interpreter.

    process = StoreProcess("sqlite:////var/lib/lmdeck/lmdeck.db")
    done = process.store(lines)     # blocks the calling thread (the store writer's); a Stored
    process.close()

The store writer reads the spool in the serving process, which costs little; decoding
the lines, building rows, updating the rollups and the search index and talking to
the database (about 0.2 ms of CPU per trace, see docs/benchmarks.md) happen here, in
one separate process (``spawn``; ``ps`` shows it as ``lmdeck-writer``) with its own
connection to the same database. So they never take the serving process's interpreter
lock from the requests, and the operating system can run them on another core.

The process starts with the first batch and stops with :meth:`close`. Batches go
over one pipe, written and read by the store writer's thread alone: no helper
threads wake in the serving process for each batch. If the process dies (killed,
out of memory), the batch it held raises
:class:`~lmdeck.tracing.store_lines.StoreUnavailable`, which the writer retries, and
that retry starts a new process; records already inserted are ignored the second
time. The process ends when its pipe closes, that is when the serving process is
gone, however it ended. It runs under Linux's ``SCHED_BATCH``: the same share of
the CPU, but its wake-ups never preempt a request being served on the same core.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from lmdeck.tracing.store_lines import Stored, StoreUnavailable, store_lines

#: The name the process shows in ``ps`` and ``top`` (Linux's ``comm``, at most 15 bytes).
PROCESS_NAME = "lmdeck-writer"


def _settle_in() -> None:
    """In the new process: name it, leave Ctrl-C to the serving process, and yield to it on a shared core."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(PROCESS_NAME)
    except OSError:
        pass  # not Linux, or /proc not mounted: the name is only a convenience
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError:
            pass  # not allowed here (a container's seccomp profile): normal scheduling


def _serve(conn: Connection, url: str) -> None:
    """The process's loop: a list of lines in, a :class:`Stored` (or the failure) out, until the pipe closes."""
    _settle_in()
    from lmdeck.db import Database
    from lmdeck.tracing.sql_store import SQLTraceStore

    store = SQLTraceStore(Database(url))
    while True:
        try:
            lines = conn.recv()
        except (EOFError, OSError):
            return  # the serving process closed the pipe or is gone
        answer: tuple[str, object]
        try:
            answer = ("stored", store_lines(store, lines))
        except StoreUnavailable as exc:
            answer = ("unavailable", str(exc))
        except Exception as exc:
            answer = ("failed", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return


class StoreProcess:
    """:func:`~lmdeck.tracing.store_lines.store_lines` on an SQL store, in one separate process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The process's pid while it runs."""
        return self._process.pid if self._process is not None else None

    def _connection(self) -> Connection:
        if self._conn is None:
            context = multiprocessing.get_context("spawn")
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, self.url), name=PROCESS_NAME, daemon=True)
            process.start()
            theirs.close()  # only the process holds its end: it reads end-of-file once we are gone
            self._process, self._conn = process, ours
        return self._conn

    def store(self, lines: Sequence[bytes]) -> Stored:
        """Store ``lines`` in the process (blocking); :class:`StoreUnavailable` if the store or the process is away.

        ``RuntimeError`` for any other failure in the process (its type and message).
        """
        with self._lock:
            conn = self._connection()
            try:
                conn.send(list(lines))
                outcome, value = conn.recv()
            except (EOFError, OSError) as exc:
                self._end(wait=False)
                raise StoreUnavailable(f"the trace store process ended ({exc or type(exc).__name__})") from None
        if outcome == "stored" and isinstance(value, Stored):
            return value
        if outcome == "unavailable":
            raise StoreUnavailable(str(value))
        raise RuntimeError(f"the trace store process failed: {value}")

    def _end(self, *, wait: bool) -> None:
        conn, self._conn = self._conn, None
        process, self._process = self._process, None
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(30.0 if wait else 0.0)
            if process.is_alive() and not wait:
                process.kill()
                process.join(5.0)

    def close(self) -> None:
        """Stop the process once its batch (if any) is done."""
        with self._lock:
            self._end(wait=True)
