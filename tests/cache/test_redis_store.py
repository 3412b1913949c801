"""RedisCacheStore against a real redis-server: shared between store instances, expiring, evicted by
scope with tenants kept apart, and a dead Redis following redis.on_unavailable.cache."""

from __future__ import annotations

import asyncio
import time

import pytest

from lmdeck.cache.entry import CacheEntry
from lmdeck.cache.redis_store import RedisCacheStore
from lmdeck.cache.runtime import CacheRuntime
from lmdeck.protocol import APIError
from lmdeck.settings import Settings
from lmdeck.testing.redis_server import RedisServer, redis_link


def entry(key: str = "k1", scope: str = "team:t1", ttl: float = 3600.0, text: str = "hello") -> CacheEntry:
    now = time.time()
    return CacheEntry(
        key=key,
        scope=scope,
        kind="chat",
        route="gpt-4o",
        bundle_hash="b" * 8,
        response={"object": "chat.completion", "choices": [{"message": {"content": text}}]},
        chunks=None,
        source_trace_id="tr-1",
        created_at=now,
        expires_at=now + ttl,
        input_tokens=3,
        output_tokens=5,
        cost_micros=120,
    )


def test_an_entry_put_by_one_store_is_read_by_another(redis_url: str) -> None:
    async def main() -> None:
        link_a, link_b = redis_link(redis_url), redis_link(redis_url)
        a, b = RedisCacheStore(link_a), RedisCacheStore(link_b)
        stored = entry()
        await a.put(stored)
        assert await b.get("team:t1", "k1") == stored
        assert await b.get("team:t1", "other") is None
        assert await b.delete("team:t1", "k1") is True
        assert await a.get("team:t1", "k1") is None
        assert await a.delete("team:t1", "k1") is False
        await link_a.close()
        await link_b.close()

    asyncio.run(main())


def test_entries_expire_at_expires_at(redis_url: str) -> None:
    async def main() -> None:
        link = redis_link(redis_url)
        now = [time.time()]
        store = RedisCacheStore(link, clock=lambda: now[0])
        await store.put(entry(ttl=3600))
        name = link.key("cache", "team:t1", "k1")
        # Redis holds it no longer than the entry lives.
        ttl_ms = await link.run("cache", lambda r: r.pttl(name))
        assert 0 < ttl_ms <= 3_600_000
        now[0] += 3601  # past expires_at: a miss even before Redis drops it
        assert await store.get("team:t1", "k1") is None
        await store.put(entry(key="stale", ttl=-1))  # already stale: not written
        assert await link.run("cache", lambda r: r.exists(link.key("cache", "team:t1", "stale"))) == 0
        await link.close()

    asyncio.run(main())


def test_evict_drops_one_scope_or_all_and_scopes_stay_apart(redis_url: str) -> None:
    async def main() -> None:
        link = redis_link(redis_url)
        store = RedisCacheStore(link)
        await store.put(entry("k1", "team:t1", text="t1"))
        await store.put(entry("k2", "team:t1", text="t1"))
        await store.put(entry("k1", "team:t2", text="t2"))
        await store.put(entry("k1", "global", text="g"))
        # The same key in two scopes is two entries.
        found_t1 = await store.get("team:t1", "k1")
        found_t2 = await store.get("team:t2", "k1")
        assert found_t1 is not None and found_t1.response["choices"][0]["message"]["content"] == "t1"
        assert found_t2 is not None and found_t2.response["choices"][0]["message"]["content"] == "t2"
        assert await store.get("key:t1", "k1") is None

        assert await store.evict("team:t1") == 2
        assert await store.get("team:t1", "k1") is None and await store.get("team:t1", "k2") is None
        assert await store.get("team:t2", "k1") is not None and await store.get("global", "k1") is not None
        assert await store.evict() == 2
        assert await link.run("cache", lambda r: r.keys("*")) == []
        await link.close()

    asyncio.run(main())


def test_runtime_uses_the_shared_store_when_redis_is_set(redis_url: str) -> None:
    link = redis_link(redis_url)
    runtime = CacheRuntime.build(Settings(), shared=link)
    assert isinstance(runtime.store, RedisCacheStore)
    asyncio.run(link.close())


def test_open_policy_misses_and_skips_writes_while_redis_is_down(redis_server: RedisServer, redis_url: str) -> None:
    async def main() -> None:
        link = redis_link(redis_url, retry_interval=300)
        store = RedisCacheStore(link)
        await store.put(entry())
        redis_server.kill()
        assert await asyncio.wait_for(store.get("team:t1", "k1"), 60) is None
        await asyncio.wait_for(store.put(entry("k2")), 60)
        assert await store.delete("team:t1", "k1") is False
        assert await store.evict("team:t1") == 0
        assert not link.up
        await link.close()

    asyncio.run(main())


def test_closed_policy_refuses_lookups_with_503_while_redis_is_down(redis_server: RedisServer, redis_url: str) -> None:
    async def main() -> None:
        link = redis_link(redis_url, retry_interval=300, on_unavailable={"cache": "closed"})
        store = RedisCacheStore(link)
        await store.put(entry())
        redis_server.kill()
        for _ in range(2):  # the first after the outage and one inside the retry interval
            with pytest.raises(APIError) as refused:
                await asyncio.wait_for(store.get("team:t1", "k1"), 60)
            assert refused.value.status == 503 and refused.value.code == "shared_state_unavailable"
        with pytest.raises(APIError):
            await store.evict()
        await asyncio.wait_for(store.put(entry("k2")), 60)  # a write is skipped, never refused
        await link.close()

    asyncio.run(main())
