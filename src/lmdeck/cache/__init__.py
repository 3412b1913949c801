"""Response caches: answer a repeated request from a stored answer instead of the upstream.

The package is one layer of the server (between the registry and policy, see
``[tool.importlinter]``): :mod:`~lmdeck.cache.keys` says which requests may share an
answer, :mod:`~lmdeck.cache.entry` what is kept, :mod:`~lmdeck.cache.base` the store
protocol every backend follows, :mod:`~lmdeck.cache.step` the exact cache step and
:mod:`~lmdeck.cache.runtime` the store and steps as the gateway builds them
(:func:`steps` declares them in phase ``cache``).
"""

from lmdeck.cache.base import CacheStore
from lmdeck.cache.entry import CacheEntry, CacheSource
from lmdeck.cache.keys import CacheScopeKind, cache_key, cache_scope, canonical_request, semantic_parts
from lmdeck.cache.runtime import CacheRuntime
from lmdeck.cache.step import CACHE_HEADER, CACHE_REQUEST, CacheRequest, ExactCache, RouteConfigs
from lmdeck.pipeline.order import StepDeclaration


def steps(runtime: CacheRuntime, routes: RouteConfigs) -> list[StepDeclaration]:
    """The cache's pipeline steps, declared in phase ``cache`` (see :mod:`lmdeck.pipeline.order`)."""
    return runtime.steps(routes)


__all__ = [
    "CACHE_HEADER",
    "CACHE_REQUEST",
    "CacheEntry",
    "CacheRequest",
    "CacheRuntime",
    "CacheScopeKind",
    "CacheSource",
    "CacheStore",
    "ExactCache",
    "RouteConfigs",
    "cache_key",
    "cache_scope",
    "canonical_request",
    "semantic_parts",
    "steps",
]
