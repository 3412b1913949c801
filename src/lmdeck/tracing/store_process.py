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

The process starts with the first batch and stops with :meth:`close`. If it dies
(killed, out of memory), the batch it held raises
:class:`~lmdeck.tracing.store_lines.StoreUnavailable`, which the writer retries, and
the next batch starts a new process; records already inserted are ignored the second
time. The process exits on its own when the serving process is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from lmdeck.child_processes import exit_with_parent
from lmdeck.tracing.store_lines import Stored, StoreUnavailable, store_lines

#: The name the process shows in ``ps`` and ``top`` (Linux's ``comm``, at most 15 bytes).
PROCESS_NAME = "lmdeck-writer"

_store: object | None = None


def _start(url: str, parent_pid: int) -> None:
    """In the new process: name it, leave Ctrl-C to the serving process, end with it, open the store."""
    global _store
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(PROCESS_NAME)
    except OSError:
        pass  # not Linux, or /proc not mounted: the name is only a convenience
    from lmdeck.db import Database
    from lmdeck.tracing.sql_store import SQLTraceStore

    _store = SQLTraceStore(Database(url))


def _store_in_process(lines: Sequence[bytes]) -> Stored:
    from lmdeck.tracing.sql_store import SQLTraceStore

    if not isinstance(_store, SQLTraceStore):
        raise RuntimeError("the trace store process has no store: it was not started by StoreProcess")
    return store_lines(_store, lines)


class StoreProcess:
    """:func:`~lmdeck.tracing.store_lines.store_lines` on an SQL store, in one separate process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start,
                    initargs=(self.url, os.getpid()),
                )
            return self._executor

    def store(self, lines: Sequence[bytes]) -> Stored:
        """Store ``lines`` in the process (blocking); :class:`StoreUnavailable` if the store or the process is away."""
        try:
            return self._pool().submit(_store_in_process, list(lines)).result()
        except BrokenProcessPool as exc:
            self._drop()
            raise StoreUnavailable(f"the trace store process ended: {exc}") from None

    def _drop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the process once its batch (if any) is done."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
