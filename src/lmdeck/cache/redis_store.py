"""The exact cache in the Redis every replica shares: an answer one gateway paid for is a hit on all.

    store = RedisCacheStore(link)                       # link: lmdeck.db.redis_link.RedisLink
    await store.put(entry)                              # on one replica ...
    await store.get(entry.scope, entry.key)             # ... a hit on another

Each entry is a string ``<prefix>cache:<scope>:<key>`` holding :meth:`CacheEntry.to_json`, with a
millisecond expiry (``PX``) at the entry's ``expires_at``, so Redis drops it when it goes stale.
Each scope (the tenant: ``team:<id>``, ``key:<id>``, ``global``) has a set
``<prefix>cache-scope:<scope>`` of its keys, and ``<prefix>cache-scopes`` lists the scopes, so
:meth:`RedisCacheStore.evict` drops one tenant's entries without scanning the keyspace; a key
that expired is taken out of its set by the next evict of its scope.

Size: the store does not count entries (``cache.max_entries`` bounds each process's in-memory store
only); bound Redis itself with ``maxmemory`` and an LRU policy (``allkeys-lru``), see
docs/caching.md.

While Redis is unavailable ``redis.on_unavailable.cache`` applies: ``open`` (the default) makes a
lookup a miss and skips the write, never an error; ``closed`` answers a lookup, a delete or an evict
with the 503 of :meth:`~lmdeck.db.redis_link.RedisLink.refusal`. A write is skipped under either
policy: it comes after the upstream answered, and that answer is the client's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis

from lmdeck.cache.entry import CacheEntry
from lmdeck.db.redis_link import RedisLink, SharedStateUnavailable

log = logging.getLogger(__name__)


class RedisCacheStore:
    """A :class:`~lmdeck.cache.base.CacheStore` in Redis (see the module docstring)."""

    def __init__(self, link: RedisLink, *, clock: Callable[[], float] = time.time) -> None:
        self.link = link
        self.clock = clock

    def _entry_key(self, scope: str, key: str) -> str:
        return self.link.key("cache", scope, key)

    def _scope_key(self, scope: str) -> str:
        return self.link.key("cache-scope", scope)

    def _refuse_if_closed(self, down: SharedStateUnavailable) -> None:
        if self.link.policy("cache") == "closed":
            raise self.link.refusal(down) from down

    async def get(self, scope: str, key: str) -> CacheEntry | None:
        name = self._entry_key(scope, key)
        try:
            raw = await self.link.run("cache", lambda r: r.get(name))
        except SharedStateUnavailable as down:
            self._refuse_if_closed(down)
            return None
        if raw is None:
            return None
        try:
            entry = CacheEntry.from_json(raw)
        except (ValueError, TypeError) as exc:
            log.warning("cache entry %s in Redis is unreadable (%s): treated as a miss", name, exc)
            return None
        if entry.scope != scope or entry.key != key or not entry.fresh(self.clock()):
            return None
        return entry

    async def put(self, entry: CacheEntry) -> None:
        ttl_ms = int((entry.expires_at - self.clock()) * 1000)
        if ttl_ms <= 0:
            return
        name = self._entry_key(entry.scope, entry.key)
        scope_set = self._scope_key(entry.scope)
        scopes = self.link.key("cache-scopes")
        data = entry.to_json()

        async def write(r: Redis) -> list[object]:
            pipe = r.pipeline(transaction=True)
            pipe.set(name, data, px=ttl_ms)
            pipe.sadd(scope_set, entry.key)
            pipe.sadd(scopes, entry.scope)
            result: list[object] = await pipe.execute()
            return result

        try:
            await self.link.run("cache", write)
        except SharedStateUnavailable:
            return  # the answer is already the client's; only its reuse is lost

    async def delete(self, scope: str, key: str) -> bool:
        name = self._entry_key(scope, key)
        scope_set = self._scope_key(scope)

        async def drop(r: Redis) -> list[int]:
            pipe = r.pipeline(transaction=True)
            pipe.delete(name)
            pipe.srem(scope_set, key)
            result: list[int] = await pipe.execute()
            return result

        try:
            removed, _ = await self.link.run("cache", drop)
        except SharedStateUnavailable as down:
            self._refuse_if_closed(down)
            return False
        return bool(removed)

    async def evict(self, scope: str | None = None) -> int:
        try:
            return await self.link.run("cache", lambda r: self._evict(r, scope))
        except SharedStateUnavailable as down:
            self._refuse_if_closed(down)
            return 0

    async def _evict(self, client: Redis, scope: str | None) -> int:
        scopes_key = self.link.key("cache-scopes")
        if scope is None:
            scopes = [s.decode() if isinstance(s, bytes) else s for s in await client.smembers(scopes_key)]
        else:
            scopes = [scope]
        dropped = 0
        for one in scopes:
            scope_set = self._scope_key(one)
            keys = [k.decode() if isinstance(k, bytes) else k for k in await client.smembers(scope_set)]
            names = [self._entry_key(one, k) for k in keys]
            pipe = client.pipeline(transaction=True)
            if names:
                pipe.delete(*names)
            pipe.delete(scope_set)
            pipe.srem(scopes_key, one)
            results = await pipe.execute()
            dropped += int(results[0]) if names else 0
        return dropped

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None  # the link is closed with the gateway
