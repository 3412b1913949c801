"""The in-process store: a bounded LRU of entries, optionally persisted to a SQLite file.

Reads and writes touch only the in-memory table, on the event loop, in O(1); each change is
then handed to the :class:`~lmdeck.cache.sqlite.SQLiteCacheFile` writer thread (when one is
given), so a request never waits on the disk. At start the file's fresh entries are loaded,
newest last, so the least recently stored go first when they do not all fit::

    store = MemoryStore(max_entries=10_000, persist=SQLiteCacheFile(data_dir / "cache.sqlite3"))
    await store.start()
    await store.put(entry)
    await store.get(entry.scope, entry.key)       # the entry, now the most recently used
"""

from __future__ import annotations

import time
from collections import OrderedDict

from lmdeck.cache.entry import CacheEntry
from lmdeck.cache.sqlite import SQLiteCacheFile


class MemoryStore:
    """A :class:`~lmdeck.cache.base.CacheStore` holding at most ``max_entries`` entries (LRU)."""

    def __init__(self, max_entries: int, persist: SQLiteCacheFile | None = None) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries is {max_entries}: the cache needs room for at least one entry")
        self.max_entries = max_entries
        self.persist = persist
        self._entries: OrderedDict[tuple[str, str], CacheEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, scope: str, key: str) -> CacheEntry | None:
        entry = self._entries.get((scope, key))
        if entry is None:
            return None
        if not entry.fresh():
            await self.delete(scope, key)
            return None
        self._entries.move_to_end((scope, key))
        return entry

    async def put(self, entry: CacheEntry) -> None:
        self._keep(entry)
        if self.persist is not None:
            self.persist.put(entry)

    def _keep(self, entry: CacheEntry) -> None:
        slot = (entry.scope, entry.key)
        self._entries[slot] = entry
        self._entries.move_to_end(slot)
        while len(self._entries) > self.max_entries:
            (scope, key), _ = self._entries.popitem(last=False)
            if self.persist is not None:
                self.persist.delete(scope, key)

    async def delete(self, scope: str, key: str) -> bool:
        found = self._entries.pop((scope, key), None) is not None
        if self.persist is not None:
            self.persist.delete(scope, key)
        return found

    async def evict(self, scope: str | None = None) -> int:
        doomed = [slot for slot in self._entries if scope is None or slot[0] == scope]
        for slot in doomed:
            del self._entries[slot]
        if self.persist is not None:
            self.persist.evict(scope)
        return len(doomed)

    async def start(self) -> None:
        if self.persist is None:
            return
        await self.persist.start()
        now = time.time()
        for entry in await self.persist.load(self.max_entries):
            if entry.fresh(now):
                self._entries[(entry.scope, entry.key)] = entry

    async def stop(self) -> None:
        if self.persist is not None:
            await self.persist.stop()
