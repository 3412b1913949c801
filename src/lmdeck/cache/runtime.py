"""The cache as the gateway builds it: one store, the steps that use it, started and stopped with the app.

    cache = CacheRuntime.build(settings)
    declarations = cache.steps(route_config)      # [StepDeclaration(ExactCache(...), "cache")]
    await cache.start()                           # loads the persisted entries
    ...
    await cache.stop()                            # flushes the queued writes

The store is the in-process LRU (``cache.max_entries``), persisted to ``data_dir/cache.sqlite3``
unless ``cache.persist`` is false.
"""

from __future__ import annotations

from lmdeck.cache.memory import MemoryStore
from lmdeck.cache.sqlite import SQLiteCacheFile
from lmdeck.cache.step import ExactCache, RouteConfigs
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.settings import Settings

#: The file the default store persists to, under ``data_dir``.
CACHE_FILE = "cache.sqlite3"


class CacheRuntime:
    """The cache store and its steps (see the module docstring)."""

    def __init__(self, settings: Settings, store: MemoryStore) -> None:
        self.settings = settings
        self.store = store

    @classmethod
    def build(cls, settings: Settings) -> CacheRuntime:
        persist = SQLiteCacheFile(settings.data_dir / CACHE_FILE) if settings.cache.persist else None
        return cls(settings, MemoryStore(settings.cache.max_entries, persist))

    def steps(self, routes: RouteConfigs) -> list[StepDeclaration]:
        """The cache steps, phase ``cache``; ``routes`` gives a route's live config by name."""
        return [StepDeclaration(ExactCache(self.store, self.settings.cache, routes), "cache")]

    async def start(self) -> None:
        await self.store.start()

    async def stop(self) -> None:
        await self.store.stop()
