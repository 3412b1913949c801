"""The semantic cache: answers for requests that mean the same as a cached one.

:mod:`~lmdeck.cache.semantic.index` (per-partition HNSW graphs), :mod:`~lmdeck.cache.semantic.store`
(entries, SQLite, index files), :mod:`~lmdeck.cache.semantic.verify` (the term check) and
:mod:`~lmdeck.cache.semantic.step` (the ``cache-semantic`` pipeline step).
"""

from lmdeck.cache.semantic.index import VectorIndex
from lmdeck.cache.semantic.step import Embed, SemanticCache
from lmdeck.cache.semantic.store import SemanticCandidate, SemanticStore
from lmdeck.cache.semantic.verify import TermVerifier

__all__ = ["Embed", "SemanticCache", "SemanticCandidate", "SemanticStore", "TermVerifier", "VectorIndex"]
