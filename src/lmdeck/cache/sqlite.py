"""Cache entries persisted in a SQLite file, written by one background thread.

The gateway never writes on a request's task: :meth:`SQLiteCacheFile.put`, ``delete`` and
``evict`` put the change on a queue and return at once; one writer thread applies the queued
changes in a transaction per batch. :meth:`load` (at start) and :meth:`stop` (which waits for
the queue to drain) run off the event loop::

    file = SQLiteCacheFile(Path(".lmdeck/cache.sqlite3"))
    await file.start()
    entries = await file.load(limit=10_000)      # the newest entries still fresh, oldest first
    file.put(entry)                              # queued; written by the writer thread
    await file.stop()

The table is ``cache_entries(scope, key, expires_at, created_at, entry)`` with ``entry`` the
JSON of :class:`~lmdeck.cache.entry.CacheEntry`; a row that no longer reads as an entry (a
file from another version) is skipped and deleted.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Literal

import anyio

from lmdeck.cache.entry import CacheEntry

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (scope, key)
)
"""

Op = tuple[Literal["put"], CacheEntry] | tuple[Literal["delete"], tuple[str, str]] | tuple[Literal["evict"], str | None]

#: Changes applied in one transaction at most.
_BATCH = 256


class SQLiteCacheFile:
    """A SQLite file of cache entries with a write queue (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.Queue[Op | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.written = 0  # changes applied, for tests and logs

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
        return conn

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(lambda: self._connect().close())
        self._thread = threading.Thread(target=self._write_loop, name="lmdeck-cache-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        await anyio.to_thread.run_sync(thread.join)

    def put(self, entry: CacheEntry) -> None:
        self._queue.put(("put", entry))

    def delete(self, scope: str, key: str) -> None:
        self._queue.put(("delete", (scope, key)))

    def evict(self, scope: str | None) -> None:
        self._queue.put(("evict", scope))

    async def load(self, limit: int) -> list[CacheEntry]:
        """The ``limit`` most recently stored entries still fresh, oldest first; expired rows are deleted."""
        return await anyio.to_thread.run_sync(self._load, limit)

    def _load(self, limit: int) -> list[CacheEntry]:
        conn = self._connect()
        try:
            with conn:
                conn.execute("DELETE FROM cache_entries WHERE expires_at <= ?", (time.time(),))
            rows = conn.execute(
                "SELECT scope, key, entry FROM cache_entries ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
            entries, unreadable = [], []
            for scope, key, data in rows:
                try:
                    entries.append(CacheEntry.from_json(data))
                except (ValueError, TypeError):
                    unreadable.append((scope, key))
            if unreadable:
                log.warning("dropping %d unreadable cache entries from %s", len(unreadable), self.path)
                with conn:
                    conn.executemany("DELETE FROM cache_entries WHERE scope = ? AND key = ?", unreadable)
            return list(reversed(entries))
        finally:
            conn.close()

    def _write_loop(self) -> None:
        conn = self._connect()
        try:
            done = False
            while not done:
                batch: list[Op] = []
                op = self._queue.get()
                while op is not None:
                    batch.append(op)
                    if len(batch) >= _BATCH:
                        break
                    try:
                        op = self._queue.get_nowait()
                    except queue.Empty:
                        break
                done = op is None
                if batch:
                    try:
                        self._apply(conn, batch)
                    except sqlite3.Error:
                        log.exception("could not write %d cache changes to %s", len(batch), self.path)
        finally:
            conn.close()

    def _apply(self, conn: sqlite3.Connection, batch: list[Op]) -> None:
        with conn:
            for op in batch:
                if op[0] == "put":
                    e = op[1]
                    conn.execute(
                        "INSERT OR REPLACE INTO cache_entries (scope, key, created_at, expires_at, entry) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (e.scope, e.key, e.created_at, e.expires_at, e.to_json()),
                    )
                elif op[0] == "delete":
                    conn.execute("DELETE FROM cache_entries WHERE scope = ? AND key = ?", op[1])
                elif op[1] is None:
                    conn.execute("DELETE FROM cache_entries")
                else:
                    conn.execute("DELETE FROM cache_entries WHERE scope = ?", (op[1],))
        self.written += len(batch)
