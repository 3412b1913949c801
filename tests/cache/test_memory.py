from __future__ import annotations

import time
from pathlib import Path

from lmdeck.cache.entry import CacheEntry
from lmdeck.cache.memory import MemoryStore
from lmdeck.cache.sqlite import SQLiteCacheFile


def entry(key: str, scope: str = "team:t1", *, ttl: float = 60.0, at: float | None = None) -> CacheEntry:
    now = time.time() if at is None else at
    return CacheEntry(
        key=key,
        scope=scope,
        kind="chat",
        route="r",
        bundle_hash="b",
        response={"id": key},
        chunks=None,
        source_trace_id="t",
        created_at=now,
        expires_at=now + ttl,
    )


async def test_the_least_recently_used_entry_goes_first() -> None:
    store = MemoryStore(max_entries=2)
    await store.put(entry("a"))
    await store.put(entry("b"))
    assert await store.get("team:t1", "a") is not None  # a is now the most recently used
    await store.put(entry("c"))
    assert await store.get("team:t1", "b") is None
    assert await store.get("team:t1", "a") is not None and await store.get("team:t1", "c") is not None
    assert len(store) == 2


async def test_scopes_are_apart_and_expired_entries_are_never_returned() -> None:
    store = MemoryStore(max_entries=10)
    await store.put(entry("a", "team:t1"))
    assert await store.get("team:t2", "a") is None
    await store.put(entry("old", at=time.time() - 120))
    assert await store.get("team:t1", "old") is None
    await store.put(entry("b", "team:t2"))
    assert await store.evict("team:t2") == 1
    assert await store.get("team:t1", "a") is not None
    assert await store.delete("team:t1", "a") is True and await store.delete("team:t1", "a") is False


async def test_entries_persist_across_a_restart_through_the_writer_thread(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    first = MemoryStore(max_entries=10, persist=SQLiteCacheFile(path))
    await first.start()
    for name in ("a", "b", "c"):
        await first.put(entry(name))
    await first.put(entry("stale", ttl=0.001))
    await first.delete("team:t1", "b")
    await first.stop()  # flushes the queue
    assert first.persist is not None and first.persist.written == 5

    second = MemoryStore(max_entries=1, persist=SQLiteCacheFile(path))
    await second.start()
    assert len(second) == 1  # only the newest fits
    found = await second.get("team:t1", "c")
    assert found is not None and found.response == {"id": "c"}
    await second.evict()
    await second.stop()

    third = MemoryStore(max_entries=10, persist=SQLiteCacheFile(path))
    await third.start()
    assert len(third) == 0
    await third.stop()
