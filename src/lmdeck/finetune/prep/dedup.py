"""Exact and near-duplicate detection over conversations' text.

Exact duplicates have the same text once case and runs of whitespace are ignored. Near
duplicates are found with MinHash LSH (``datasketch``) over character 3-gram shingles; each LSH
candidate is confirmed with the shingle sets' exact Jaccard similarity, so a row is dropped only
when it is at least ``threshold`` similar to a row kept before it (the LSH's own threshold is set
lower than ``threshold`` so that its misses are rare)::

    dedupe = Deduplicator(near_threshold=0.9)
    dedupe.check("How many r's in 'carrot'? 2")    # None: kept
    dedupe.check("how many r's in  'carrot'? 2")   # 'exact_duplicate'
"""

from __future__ import annotations

import hashlib
from typing import Literal

from datasketch import MinHash, MinHashLSH

DuplicateReason = Literal["exact_duplicate", "near_duplicate"]

SHINGLE_CHARS = 3
NUM_PERM = 128
#: How far under the wanted similarity the LSH looks for candidates (each then checked exactly).
_LSH_SLACK = 0.15


def normalize(text: str) -> str:
    """``text`` lower-cased with runs of whitespace made one space."""
    return " ".join(text.lower().split())


def shingles(text: str, size: int = SHINGLE_CHARS) -> set[str]:
    """The character ``size``-grams of the normalized text (the whole text when shorter)."""
    norm = normalize(text)
    if len(norm) <= size:
        return {norm}
    return {norm[i : i + size] for i in range(len(norm) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class Deduplicator:
    """Remembers the texts kept so far and says whether a new one duplicates one of them.

    ``near_threshold`` is a Jaccard similarity in (0, 1]; 1.0 (or ``near=False``) finds exact
    duplicates only. Deterministic: MinHash permutations come from a fixed seed.
    """

    def __init__(self, near_threshold: float = 0.9, *, near: bool = True) -> None:
        if not 0.0 < near_threshold <= 1.0:
            raise ValueError(f"near_threshold must be in (0, 1], got {near_threshold!r}")
        self.near_threshold = near_threshold
        self.near = near and near_threshold < 1.0
        self._exact: set[bytes] = set()
        self._shingles: dict[str, set[str]] = {}
        self._lsh = (
            MinHashLSH(threshold=max(0.05, near_threshold - _LSH_SLACK), num_perm=NUM_PERM) if self.near else None
        )

    def check(self, text: str) -> DuplicateReason | None:
        """None (and ``text`` is remembered) when it duplicates nothing kept; else why it is a duplicate."""
        key = hashlib.sha256(normalize(text).encode()).digest()
        if key in self._exact:
            return "exact_duplicate"
        if self._lsh is not None:
            grams = shingles(text)
            signature = MinHash(num_perm=NUM_PERM, seed=1)
            signature.update_batch([g.encode() for g in grams])
            for candidate in self._lsh.query(signature):
                if jaccard(grams, self._shingles[candidate]) >= self.near_threshold:
                    return "near_duplicate"
            name = str(len(self._shingles))
            self._shingles[name] = grams
            self._lsh.insert(name, signature)
        self._exact.add(key)
        return None
