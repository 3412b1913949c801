"""A leader lease held as an exclusive ``flock`` on a file, for processes of one machine.

lease = FileLease(Path(".lmdeck/lmdeck.leader.lock"))
lease.try_acquire()    # True: this process is the leader until release() or its death
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import BinaryIO


class FileLease:
    """The lease is the file's exclusive lock; the kernel frees it when the holding process dies.

    The holder's pid is written into the file for an operator to read. Thread-safe.

    >>> lease = FileLease(Path("/tmp/example.lock"))  # doctest: +SKIP
    >>> lease.try_acquire()  # doctest: +SKIP
    True
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: BinaryIO | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._file is not None

    def try_acquire(self) -> bool:
        with self._lock:
            if self._file is not None:
                return True
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            file = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+b")
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                return False
            file.truncate(0)
            file.write(str(os.getpid()).encode())
            file.flush()
            self._file = file
            return True

    def release(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)
            file.close()

    def holder(self) -> str | None:
        """The pid written by the holder, or None when the lease is free (a probe: takes and drops it)."""
        if self.held:
            return str(os.getpid())
        if not self.path.exists():
            return None
        with self.path.open("rb") as file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return file.read().decode(errors="replace").strip() or "unknown"
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)
        return None
