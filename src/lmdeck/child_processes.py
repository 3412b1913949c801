"""Helper processes that end with the process that started them.

    exit_with_parent(parent_pid)    # in a pool worker's initializer

A ``spawn`` pool worker (the analytics workers) holds both ends of its task queue,
so it never reads an end-of-file when the serving process is killed with SIGKILL and
would wait for work for good; the trace store process reads its pipe's end-of-file,
but not while it is busy in a call to the database. This daemon thread checks once a
second whether the process was handed to another parent and, if so, ends it at once:
a batch it was inserting is rolled back by the database, and the spool still holds it.
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """End this process within ``interval_s`` seconds of ``parent_pid`` ending (a daemon thread)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(0)

    threading.Thread(target=watch, name="lmdeck-exit-with-parent", daemon=True).start()
