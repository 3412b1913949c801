"""Response caches: answer a repeated request from a stored answer instead of the upstream.

The package is one layer of the server (between the registry and policy, see
``[tool.importlinter]``): :mod:`~lmdeck.cache.keys` says which requests may share an
answer, :mod:`~lmdeck.cache.entry` what is kept, :mod:`~lmdeck.cache.base` the store
protocol every backend follows.
"""

from lmdeck.cache.base import CacheStore
from lmdeck.cache.entry import CacheEntry, CacheSource
from lmdeck.cache.keys import CacheScopeKind, cache_key, cache_scope, canonical_request, semantic_parts

__all__ = [
    "CacheEntry",
    "CacheScopeKind",
    "CacheSource",
    "CacheStore",
    "cache_key",
    "cache_scope",
    "canonical_request",
    "semantic_parts",
]
