"""The store a response cache keeps its entries in, behind one small protocol.

A store holds :class:`~lmdeck.cache.entry.CacheEntry` objects by ``(scope, key)``: the
scope is the tenant the entry belongs to (``team:<id>``, ``key:<id>`` or ``global``, see
:func:`lmdeck.cache.keys.cache_scope`) and the key the sha256 of the canonical request
(:func:`lmdeck.cache.keys.cache_key`). Every method is async and may run on the event loop:
a store never writes to disk or a network on the caller's task; durable writes go through
a background writer and :meth:`CacheStore.put` returns once the entry is readable in this
process::

    store = MemoryStore(max_entries=10_000, persist=SQLiteCacheFile(path))
    await store.start()                  # loads the persisted entries still fresh
    await store.put(entry)
    found = await store.get(entry.scope, entry.key)     # CacheEntry | None
    await store.delete(entry.scope, entry.key)
    dropped = await store.evict(scope="team:t1")         # every entry of one scope
    await store.stop()                   # flushes the writes still queued

One implementation per module (``memory.py``, ``sqlite.py``); a Redis store for several
gateways adds a module, not a branch.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lmdeck.cache.entry import CacheEntry


@runtime_checkable
class CacheStore(Protocol):
    """Where cached responses live; ``get`` never returns an expired entry."""

    async def get(self, scope: str, key: str) -> CacheEntry | None:
        """The fresh entry under ``(scope, key)``, or None (absent or past its ``expires_at``)."""
        ...

    async def put(self, entry: CacheEntry) -> None:
        """Keep ``entry`` under ``(entry.scope, entry.key)``, replacing any entry there; the
        least recently used entries go when the store is full. Persisting happens later."""
        ...

    async def delete(self, scope: str, key: str) -> bool:
        """Drop one entry; True when there was one."""
        ...

    async def evict(self, scope: str | None = None) -> int:
        """Drop every entry of ``scope`` (all entries when None); returns how many were dropped."""
        ...

    async def start(self) -> None:
        """Open the store (load what was persisted); called once with the gateway."""
        ...

    async def stop(self) -> None:
        """Flush queued writes and close; called once with the gateway."""
        ...
