"""The parent of ``lmdeck serve --workers N``: starts the worker processes, restarts one that dies,
stops them all on SIGTERM or SIGINT.

    pool = WorkerPool(4, work, on_ready=announce, on_stop=close_listeners)
    raise SystemExit(pool.run())      # 0 once stopped by a signal; 1 when workers cannot be kept running

``work(index, restarts, ready)`` runs in a forked child: it builds what the worker serves, calls ``ready()``,
then serves until SIGTERM. Workers start one after another, each once the previous one is ready,
so that first-start work (the admin key, the master key) is done once, by worker 0, and found by the
others. Each worker is in its own process group: a Ctrl-C reaches the parent only, which stops the
workers once and gracefully. A worker whose parent disappears (killed with SIGKILL) stops itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger(__name__)

#: ``work(index, restarts, ready)``: ``restarts`` is how many times worker ``index`` was started before.
Work = Callable[[int, int, Callable[[], None]], None]


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _child(index: int, restarts: int, ready_fd: int, work: Work) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgid(0, 0)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="lmdeck-parent-watch", daemon=True).start()

    def ready() -> None:
        os.write(ready_fd, b"r")
        os.close(ready_fd)

    work(index, restarts, ready)


class WorkerPool:
    """Supervises ``count`` forked worker processes (see the module docs).

    ``start_timeout``: seconds a worker may take to call ``ready()``; ``stop_timeout``: seconds the
    workers have to stop after SIGTERM before they are killed; a worker that dies within
    ``quick_exit_s`` of its start ``max_quick_exits`` times in a row stops the whole pool.

    >>> WorkerPool(2, lambda index, restarts, ready: ready()).run()  # doctest: +SKIP
    """

    def __init__(
        self,
        count: int,
        work: Work,
        *,
        on_ready: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
        start_timeout: float = 300.0,
        stop_timeout: float = 60.0,
        quick_exit_s: float = 10.0,
        max_quick_exits: int = 5,
    ) -> None:
        self.count = count
        self.work = work
        self.on_ready = on_ready
        self.on_stop = on_stop
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.quick_exit_s = quick_exit_s
        self.max_quick_exits = max_quick_exits
        self.processes: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._quick_exits: dict[int, int] = {}
        self._starts: dict[int, int] = {}
        self._stopping = threading.Event()
        self._context = multiprocessing.get_context("fork")

    def pids(self) -> dict[int, int | None]:
        """Each worker's pid, by index."""
        return {index: proc.pid for index, proc in self.processes.items()}

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping.is_set():
            log.info("%s: stopping %d workers", signal.Signals(signum).name, self.count)
        self._stopping.set()

    def _start(self, index: int) -> bool:
        """Fork worker ``index`` and wait until it is ready; False when it died or took too long."""
        read_fd, write_fd = os.pipe()
        restarts = self._starts.get(index, 0)
        self._starts[index] = restarts + 1
        proc = self._context.Process(
            target=_child, args=(index, restarts, write_fd, self.work), name=f"lmdeck-worker-{index}"
        )
        proc.start()
        os.close(write_fd)
        self.processes[index] = proc
        self._started_at[index] = time.monotonic()
        deadline = time.monotonic() + self.start_timeout
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select([read_fd], [], [], 0.5)
                if readable:
                    if os.read(read_fd, 1):
                        log.info("worker %d (pid %d) is serving", index, proc.pid)
                        return True
                    proc.join(5.0)
                    log.error("worker %d (pid %d) exited with %s before it was ready", index, proc.pid, proc.exitcode)
                    return False
                if time.monotonic() > deadline:
                    log.error(
                        "worker %d (pid %d) was not ready after %gs; stopping it", index, proc.pid, self.start_timeout
                    )
                    proc.terminate()
                    proc.join(self.stop_timeout)
                    return False
            return False
        finally:
            os.close(read_fd)

    def run(self) -> int:
        """Start the workers, keep them running until SIGTERM/SIGINT, stop them; the exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.count):
                if not self._start(index):
                    return 0 if self._stopping.is_set() else 1
            if self.on_ready is not None:
                self.on_ready()
            return self._supervise()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self) -> int:
        while not self._stopping.wait(0.5):
            for index, proc in list(self.processes.items()):
                if proc.exitcode is None or self._stopping.is_set():
                    continue
                quick = time.monotonic() - self._started_at[index] < self.quick_exit_s
                self._quick_exits[index] = self._quick_exits.get(index, 0) + 1 if quick else 0
                if self._quick_exits[index] >= self.max_quick_exits:
                    log.error(
                        "worker %d keeps exiting right after its start (%d times); stopping",
                        index,
                        self._quick_exits[index],
                    )
                    return 1
                log.warning("worker %d (pid %d) exited with %s; starting another", index, proc.pid, proc.exitcode)
                self._stopping.wait(min(0.5 * self._quick_exits[index], 5.0))
                if not self._stopping.is_set():
                    self._start(index)
        return 0

    def _shutdown(self) -> None:
        if self.on_stop is not None:
            self.on_stop()
        alive = [proc for proc in self.processes.values() if proc.exitcode is None]
        for proc in alive:
            proc.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for proc in alive:
            proc.join(max(deadline - time.monotonic(), 0.0))
        for proc in alive:
            if proc.exitcode is None:
                log.error("worker pid %d did not stop within %gs; killing it", proc.pid, self.stop_timeout)
                proc.kill()
                proc.join(5.0)
