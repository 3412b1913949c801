"""The trace store process: the store writer's inserts, off the serving process's interpreter.

    process = StoreProcess("sqlite:////var/lib/lmdeck/lmdeck.db")
    done = process.store(lines)     # blocks the calling thread (the store writer's); a Stored
    process.close()

The store writer reads the spool in the serving process, which costs little; decoding
the lines, building rows, updating the rollups and the search index and talking to
the database (0.3 to 0.45 ms of CPU per trace at saturation, see docs/benchmarks.md)
happen here, in one separate process (``spawn``; ``ps`` shows it as ``lmdeck-writer``)
with its own connection to the same database. So they never take the serving
process's interpreter lock from the requests, and the operating system can run them
on another core.

The process starts with the first batch and stops with :meth:`close` (killed if it
does not end within 30 s). Batches go over one pipe, written and read by the store
writer's thread alone: no helper threads wake in the serving process for each batch.
If the process dies (killed, out of memory), the batch it held raises
:class:`~lmdeck.tracing.store_lines.StoreUnavailable`, which the writer retries, and
that retry starts a new process; records already inserted are ignored the second
time. If no process can be started, :class:`ProcessStartFailed` tells the writer to
keep the inserts in its own thread. The process ends when its pipe closes, and within
a second of the serving process ending, however it ended, even in the middle of an
insert (which the database then rolls back: the spool still holds those traces). It
runs under Linux's ``SCHED_BATCH``: the same share of the CPU, but its wake-ups never
preempt a request being served on the same core.

A program that embeds lmdeck and stores traces this way must guard its entry point
with ``if __name__ == "__main__":``, as for any ``spawn`` process (Python's
multiprocessing docs, "Safe importing of main module").
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from lmdeck.child_processes import exit_with_parent
from lmdeck.tracing.store_lines import Stored, StoreUnavailable, store_lines

#: The name the process shows in ``ps`` and ``top`` (Linux's ``comm``, at most 15 bytes).
PROCESS_NAME = "lmdeck-writer"


def _settle_in(parent_pid: int) -> None:
    """In the new process: leave Ctrl-C to the serving process, end with it, take a name, and yield to
    it on a shared core."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)  # also when busy in an insert, which a closed pipe would not stop
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


def _serve(conn: Connection, url: str, parent_pid: int) -> None:
    """The process's loop: a list of lines in, a :class:`Stored` (or the failure) out, until the pipe closes."""
    _settle_in(parent_pid)
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


class ProcessStartFailed(RuntimeError):
    """The store process could not be started (the reason is the message); the writer keeps the inserts."""


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
            process = context.Process(
                target=_serve, args=(theirs, self.url, os.getpid()), name=PROCESS_NAME, daemon=True
            )
            try:
                process.start()
            except Exception as exc:  # out of processes or memory, or a daemonic host process
                ours.close()
                theirs.close()
                raise ProcessStartFailed(f"{type(exc).__name__}: {exc}") from exc
            theirs.close()  # only the process holds its end: it reads end-of-file once we are gone
            self._process, self._conn = process, ours
        return self._conn

    def store(self, lines: Sequence[bytes]) -> Stored:
        """Store ``lines`` in the process (blocking); :class:`StoreUnavailable` if the store or the process is away.

        :class:`ProcessStartFailed` when no process can be started; ``RuntimeError`` for any other
        failure in the process (its type and message).
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
            if process.is_alive():
                process.kill()  # stuck in a call to the database: the transaction rolls back, the spool keeps it
                process.join(5.0)

    def close(self) -> None:
        """Stop the process once its batch (if any) is done."""
        with self._lock:
            self._end(wait=True)
