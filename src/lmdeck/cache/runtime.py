"""The cache as the gateway builds it: one store, the steps that use it, started and stopped with the app.

    cache = CacheRuntime.build(settings)
    declarations = cache.steps(route_config)      # [StepDeclaration(ExactCache(...), "cache")]
    await cache.start()                           # loads the persisted entries
    ...
    await cache.stop()                            # flushes the queued writes

The store is the in-process LRU (``cache.max_entries``), persisted to ``data_dir/cache.sqlite3``
unless ``cache.persist`` is false; with ``redis.url`` set it is the Redis every replica shares
(:class:`~lmdeck.cache.redis_store.RedisCacheStore`). The semantic cache, per process either way,
keeps its own entries (with their embeddings) in ``data_dir/cache-semantic.sqlite3`` and its index
files beside it; the MiniLM encoder is loaded as the gateway starts when a configured route or the
global ``cache`` enables it, else on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lmdeck.cache.base import CacheStore
from lmdeck.cache.memory import MemoryStore
from lmdeck.cache.redis_store import RedisCacheStore
from lmdeck.cache.semantic.step import SemanticCache
from lmdeck.cache.semantic.store import SemanticStore
from lmdeck.cache.sqlite import SQLiteCacheFile
from lmdeck.cache.step import ExactCache, RouteConfigs
from lmdeck.db.redis_link import RedisLink
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.settings import Settings

if TYPE_CHECKING:
    from lmdeck.local.runtime import LocalRuntime

#: The file the default store persists to, under ``data_dir``.
CACHE_FILE = "cache.sqlite3"
#: The semantic cache's entries and embeddings, under ``data_dir`` (its index files in ``<file>.index/``).
SEMANTIC_FILE = "cache-semantic.sqlite3"
#: The bundled sentence encoder the semantic cache embeds with, and its vectors' size.
ENCODER = "all-minilm-l6-v2"
ENCODER_DIMENSIONS = 384


class CacheRuntime:
    """The cache store and its steps (see the module docstring)."""

    def __init__(self, settings: Settings, store: CacheStore) -> None:
        self.settings = settings
        self.store = store
        path = settings.data_dir / SEMANTIC_FILE if settings.cache.persist else None
        self.semantic = SemanticStore(ENCODER_DIMENSIONS, settings.cache.max_entries, path)
        self._local: LocalRuntime | None = None

    @classmethod
    def build(cls, settings: Settings, *, shared: RedisLink | None = None) -> CacheRuntime:
        """The runtime ``settings.cache`` describes; ``shared``: the Redis every replica shares, if any."""
        if shared is not None:
            return cls(settings, RedisCacheStore(shared))
        persist = SQLiteCacheFile(settings.data_dir / CACHE_FILE) if settings.cache.persist else None
        return cls(settings, MemoryStore(settings.cache.max_entries, persist))

    def steps(self, routes: RouteConfigs) -> list[StepDeclaration]:
        """The cache steps, phase ``cache``; ``routes`` gives a route's live config by name."""
        exact = ExactCache(self.store, self.settings.cache, routes)
        return [
            StepDeclaration(exact, "cache"),
            StepDeclaration(SemanticCache(exact, self.semantic, self.embed), "cache", after=("cache-exact",)),
        ]

    def _encoder(self) -> LocalRuntime:
        if self._local is None:
            from lmdeck.local.runtime import LocalRuntime

            self._local = LocalRuntime(self.settings.local)
            self._local.acquire()
        return self._local

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        """Unit MiniLM vectors of ``texts``, embedded on the batcher's thread (the model loads on first use)."""
        batcher = await self._encoder().embedder(ENCODER)
        return await batcher.embed(texts)

    async def start(self) -> None:
        await self.store.start()
        await self.semantic.start()
        configs = [self.settings.cache.for_route(route.cache) for route in self.settings.routes]
        if self.settings.cache.semantic.enabled or any(c.enabled and c.semantic.enabled for c in configs):
            self._encoder().preload(ENCODER)  # in the background: the first request need not wait for it

    async def stop(self) -> None:
        await self.store.stop()
        await self.semantic.stop()
        if self._local is not None:
            self._local.release()
            self._local = None
