import time
from pathlib import Path

import numpy as np

from lmdeck.cache.entry import CacheEntry
from lmdeck.cache.semantic.store import SemanticStore


def entry(key: str, scope: str = "team:t1", ttl: float = 3600.0) -> CacheEntry:
    now = time.time()
    return CacheEntry(
        key=key,
        scope=scope,
        kind="chat",
        route="demo",
        bundle_hash="b1",
        response={"id": key, "object": "chat.completion", "choices": []},
        chunks=None,
        source_trace_id=f"trace-{key}",
        created_at=now,
        expires_at=now + ttl,
    )


def vec(seed: int, dims: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return v / np.linalg.norm(v)


async def test_put_then_search_above_threshold_only() -> None:
    store = SemanticStore(8, max_entries=10)
    await store.start()
    await store.put(entry("k1"), "shape", "hello", vec(1))
    hits = await store.search("shape", vec(1), threshold=0.99)
    assert [(h.entry.key, h.text) for h in hits] == [("k1", "hello")]
    assert await store.search("shape", vec(2), threshold=0.99) == []
    assert await store.search("other-shape", vec(1), threshold=0.5) == []
    await store.stop()


async def test_expired_entries_are_never_returned() -> None:
    store = SemanticStore(8, max_entries=10)
    await store.start()
    await store.put(entry("old", ttl=-1), "shape", "hello", vec(1))
    assert await store.search("shape", vec(1), threshold=0.5) == []
    assert len(store) == 0
    await store.stop()


async def test_least_recently_used_go_past_max_entries() -> None:
    store = SemanticStore(8, max_entries=2)
    await store.start()
    for n in range(3):
        await store.put(entry(f"k{n}"), "shape", str(n), vec(n))
    assert await store.search("shape", vec(0), threshold=0.99) == []
    assert len(store) == 2 and len(store.index) == 2
    await store.stop()


async def test_evict_drops_one_scope() -> None:
    store = SemanticStore(8, max_entries=10)
    await store.start()
    await store.put(entry("a", scope="team:a"), "pa", "x", vec(1))
    await store.put(entry("b", scope="team:b"), "pb", "x", vec(1))
    assert await store.evict("team:a") == 1
    assert await store.search("pa", vec(1), threshold=0.5) == []
    assert len(await store.search("pb", vec(1), threshold=0.5)) == 1
    await store.stop()


async def test_entries_survive_a_restart_with_the_index_file(tmp_path: Path) -> None:
    path = tmp_path / "cache-semantic.sqlite3"
    store = SemanticStore(8, max_entries=10, path=path)
    await store.start()
    await store.put(entry("k1"), "shape", "hello", vec(1))
    await store.put(entry("k2"), "shape", "bye", vec(2))
    await store.stop()
    assert (tmp_path / "cache-semantic.sqlite3.index" / "manifest.json").exists()

    again = SemanticStore(8, max_entries=10, path=path)
    await again.start()
    assert not again.rebuilt
    assert [h.entry.key for h in await again.search("shape", vec(2), threshold=0.99)] == ["k2"]
    await again.put(entry("k3"), "shape", "new", vec(3))
    assert [h.entry.key for h in await again.search("shape", vec(3), threshold=0.99)] == ["k3"]
    await again.stop()


async def test_a_missing_index_file_is_rebuilt_from_the_stored_vectors(tmp_path: Path) -> None:
    path = tmp_path / "cache-semantic.sqlite3"
    store = SemanticStore(8, max_entries=10, path=path)
    await store.start()
    await store.put(entry("k1"), "shape", "hello", vec(1))
    await store.stop()
    for file in (tmp_path / "cache-semantic.sqlite3.index").iterdir():
        file.unlink()

    again = SemanticStore(8, max_entries=10, path=path)
    await again.start()
    assert again.rebuilt
    assert [h.entry.key for h in await again.search("shape", vec(1), threshold=0.99)] == ["k1"]
    await again.stop()


async def test_a_refreshed_answer_replaces_the_old_one() -> None:
    store = SemanticStore(8, max_entries=10)
    await store.start()
    await store.put(entry("k1"), "shape", "hello", vec(1))
    newer = entry("k1")
    await store.put(newer, "shape", "hello", vec(1))
    hits = await store.search("shape", vec(1), threshold=0.99)
    assert [h.entry for h in hits] == [newer]
    assert len(store) == 1 and len(store.index) == 1
    await store.stop()
