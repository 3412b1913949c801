"""The semantic cache's entries: in memory for lookups, in SQLite across restarts, with the index file.

Each entry is a :class:`~lmdeck.cache.entry.CacheEntry` plus what a semantic match needs: the
partition it may be matched in (the request's shape digest), the user text and its embedding.
Lookups and index changes run on one thread of their own, SQLite writes on another, so the event
loop never waits on the graph or the disk; :meth:`SemanticStore.put` returns once the entry is
searchable. At :meth:`start` the fresh rows are read back from SQLite and the index is loaded from
its files, or rebuilt from the stored vectors when the files are missing or do not match; at
:meth:`stop` the index files are written::

    store = SemanticStore(dimensions=384, max_entries=10_000,
                          path=Path(".lmdeck/cache-semantic.sqlite3"))
    await store.start()
    await store.put(entry, partition=shape, text="how do I reset my password?", vector=vec)
    hits = await store.search(shape, query_vec, threshold=0.9)   # [SemanticCandidate], best first
    await store.evict(scope="team:t1")
    await store.stop()

The table is ``semantic_entries(label, scope, partition, text, expires_at, vector, entry)``: the
vector as float32 bytes, the entry as its JSON. A row that does not read back is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from lmdeck.cache.entry import CacheEntry
from lmdeck.cache.semantic.index import VectorIndex

__all__ = ["SemanticCandidate", "SemanticStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS semantic_entries (
    label INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    partition TEXT NOT NULL,
    text TEXT NOT NULL,
    expires_at REAL NOT NULL,
    vector BLOB NOT NULL,
    entry BLOB NOT NULL
)
"""


@dataclass(frozen=True)
class SemanticCandidate:
    """A stored entry whose request text is at least ``threshold`` similar (cosine, 0..1) to a query."""

    entry: CacheEntry
    text: str
    similarity: float


@dataclass
class _Stored:
    entry: CacheEntry
    partition: str
    text: str
    vector: np.ndarray


class SemanticStore:
    """Entries, their index and their SQLite file (see the module docstring).

    ``path`` None keeps entries in memory only; the index files go to ``<path>.index/``.
    """

    def __init__(self, dimensions: int, max_entries: int, path: Path | None = None) -> None:
        self.dimensions = dimensions
        self.max_entries = max_entries
        self.path = path
        self.index = VectorIndex(dimensions)
        self.rebuilt = False  # True when start() rebuilt the index from the vectors (for tests and logs)
        self._entries: OrderedDict[int, _Stored] = OrderedDict()
        self._labels: dict[tuple[str, str], int] = {}  # (scope, exact key) → label: a refresh replaces
        self._next_label = 1
        self._search = ThreadPoolExecutor(1, thread_name_prefix="lmdeck-semantic-index")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="lmdeck-semantic-writer")
        self._db: sqlite3.Connection | None = None

    @property
    def index_dir(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".index")

    def __len__(self) -> int:
        return len(self._entries)

    async def _on_index(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._search, fn)

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        def run() -> None:
            if self._db is None:
                return
            try:
                with self._db:
                    self._db.execute(sql, params)
            except sqlite3.Error:
                log.exception("semantic cache: writing %s failed", self.path)

        if self._db is not None:
            self._writer.submit(run)

    async def start(self) -> None:
        """Read the fresh entries back and load or rebuild the index (off the event loop)."""
        await asyncio.get_running_loop().run_in_executor(self._writer, self._open)
        await self._on_index(self._restore)

    def _open(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        with self._db:
            self._db.execute("DELETE FROM semantic_entries WHERE expires_at <= ?", (time.time(),))
        rows = self._db.execute(
            "SELECT label, partition, text, vector, entry FROM semantic_entries ORDER BY label DESC LIMIT ?",
            (self.max_entries,),
        ).fetchall()
        bad: list[int] = []
        for label, partition, text, vector, data in reversed(rows):
            try:
                entry = CacheEntry.from_json(data)
                array = np.frombuffer(vector, dtype=np.float32)
                if array.shape != (self.dimensions,):
                    raise ValueError(f"a vector of {array.shape} in an index of {self.dimensions}")
            except (ValueError, TypeError) as exc:
                log.warning("semantic cache: dropping unreadable entry %s (%s)", label, exc)
                bad.append(label)
                continue
            self._entries[label] = _Stored(entry, partition, text, array)
            self._labels[entry.scope, entry.key] = label
        with self._db:
            self._db.executemany("DELETE FROM semantic_entries WHERE label = ?", [(b,) for b in bad])
            if rows:
                self._db.execute("DELETE FROM semantic_entries WHERE label < ?", (min(r[0] for r in rows),))
        last = self._db.execute("SELECT MAX(label) FROM semantic_entries").fetchone()[0]
        self._next_label = int(last or 0) + 1

    def _restore(self) -> None:
        expected: dict[str, set[int]] = {}
        for label, stored in self._entries.items():
            expected.setdefault(stored.partition, set()).add(label)
        loaded = VectorIndex.load(self.index_dir, self.dimensions, expected) if self.index_dir else None
        if loaded is not None:
            self.index = loaded
            return
        self.rebuilt = bool(self._entries)
        for label, stored in self._entries.items():
            self.index.add(stored.partition, label, stored.vector)

    async def stop(self) -> None:
        """Write the index files, let the queued SQLite writes finish, and close."""
        if self.index_dir is not None:
            directory = self.index_dir
            await self._on_index(lambda: self.index.save(directory))
        self._search.shutdown(wait=True)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.shutdown, True)
        if self._db is not None:
            self._db.close()
            self._db = None

    async def put(self, entry: CacheEntry, partition: str, text: str, vector: list[float] | np.ndarray) -> None:
        """Keep ``entry`` findable in ``partition`` by ``vector`` (unit length, ``dimensions`` floats);
        the least recently used entries go past ``max_entries``. Persisted later, off the loop."""
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (self.dimensions,):
            raise ValueError(f"a vector of shape {array.shape} for an index of {self.dimensions} dimensions")
        label = self._next_label
        self._next_label += 1
        gone: list[int] = []
        replaced = self._labels.get((entry.scope, entry.key))
        if replaced is not None and self._entries.pop(replaced, None) is not None:
            gone.append(replaced)
        self._entries[label] = _Stored(entry, partition, text, array)
        self._labels[entry.scope, entry.key] = label
        while len(self._entries) > self.max_entries:
            old, stored = self._entries.popitem(last=False)
            self._labels.pop((stored.entry.scope, stored.entry.key), None)
            gone.append(old)

        def change() -> None:
            self.index.add(partition, label, array)
            for old in gone:
                self.index.remove(old)

        await self._on_index(change)
        self._write(
            "INSERT INTO semantic_entries (label, scope, partition, text, expires_at, vector, entry) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (label, entry.scope, partition, text, entry.expires_at, array.tobytes(), entry.to_json()),
        )
        for old in gone:
            self._write("DELETE FROM semantic_entries WHERE label = ?", (old,))

    async def search(
        self, partition: str, vector: list[float] | np.ndarray, threshold: float, k: int = 4
    ) -> list[SemanticCandidate]:
        """The fresh entries of ``partition`` at least ``threshold`` similar to ``vector``, best first."""
        query = np.asarray(vector, dtype=np.float32)
        found = await self._on_index(lambda: self.index.search(partition, query, k))
        now = time.time()
        out: list[SemanticCandidate] = []
        for label, similarity in found:
            stored = self._entries.get(label)
            if stored is None or similarity < threshold:
                continue
            if not stored.entry.fresh(now):
                await self.delete(label)
                continue
            self._entries.move_to_end(label)
            out.append(SemanticCandidate(stored.entry, stored.text, similarity))
        return out

    async def delete(self, label: int) -> bool:
        stored = self._entries.pop(label, None)
        if stored is None:
            return False
        if self._labels.get((stored.entry.scope, stored.entry.key)) == label:
            del self._labels[stored.entry.scope, stored.entry.key]
        await self._on_index(lambda: self.index.remove(label))
        self._write("DELETE FROM semantic_entries WHERE label = ?", (label,))
        return True

    async def evict(self, scope: str | None = None) -> int:
        """Drop every entry of ``scope`` (all entries when None); returns how many were dropped."""
        labels = [label for label, s in self._entries.items() if scope is None or s.entry.scope == scope]
        for label in labels:
            stored = self._entries.pop(label)
            self._labels.pop((stored.entry.scope, stored.entry.key), None)

        def change() -> None:
            for label in labels:
                self.index.remove(label)

        await self._on_index(change)
        if scope is None:
            self._write("DELETE FROM semantic_entries", ())
        else:
            self._write("DELETE FROM semantic_entries WHERE scope = ?", (scope,))
        return len(labels)
