"""Mergeable latency sketches: DDSketch's logarithmic buckets, stored as a sparse JSON map.

    sketch = Sketch()
    for ms in (12.0, 80.5, 81.0, 2300.0):
        sketch.add(ms)
    sketch.merge(Sketch.loads(other_text))     # a merge adds bucket counts: exact, order-free
    sketch.quantile(0.99)                      # within RELATIVE_ACCURACY of the true p99
    text = sketch.dumps()                      # '{"z":0,"b":{"213":1,...}}'

A value ``x > 0`` falls in bucket ``ceil(log_gamma(x))`` of ddsketch's
:class:`~ddsketch.mapping.LogarithmicMapping` with ``gamma = (1 + a) / (1 - a)``
and ``a`` = :data:`RELATIVE_ACCURACY` (1 %); the bucket's representative value
is within ``a`` of every value in it, so any quantile read back is within 1 %
(relative) of a value of rank ``q * (n - 1)`` in the data. Values ``<= 0``
(and values too small to tell from 0) are counted in the zero bucket.

Buckets are the same for every sketch, so merging rollup rows (minutes into an
hour, hours into a month, teams into a route) is adding counts, never a scan of
the raw traces.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable

import orjson
from ddsketch.mapping import LogarithmicMapping

#: Every quantile a sketch returns is within this relative error of an exact one.
RELATIVE_ACCURACY = 0.01

_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)

#: A bucket of the mapping: an integer (negative for values under 1).
Key = int
#: The key :meth:`Sketch.key_of` gives the zero bucket; far outside the mapping's keys (about +-40,000).
ZERO_KEY: Key = -(1 << 40)

#: The SQL function that merges two stored sketches (text from :meth:`Sketch.dumps`, either may be NULL):
#: created by migration ``0009_trace_sketch_merge`` on PostgreSQL, by :func:`register_sketch_merge` on
#: each SQLite connection that writes rollups.
SKETCH_MERGE = "lmdeck_sketch_merge"


def register_sketch_merge(connection: sqlite3.Connection) -> None:
    """Define :data:`SKETCH_MERGE` on a SQLite connection (not while one of its statements is open)."""
    connection.create_function(SKETCH_MERGE, 2, Sketch.merge_text, deterministic=True)


class Sketch:
    """Counts per logarithmic bucket (see the module docs); ``count`` values in all."""

    __slots__ = ("bins", "count", "zeros")

    def __init__(self, bins: dict[int, int] | None = None, zeros: int = 0) -> None:
        self.bins: dict[int, int] = bins if bins is not None else {}
        self.zeros = zeros
        self.count = zeros + sum(self.bins.values())

    def add(self, value: float, count: int = 1) -> None:
        """Count ``value`` (milliseconds, or any non-negative unit) ``count`` times; NaN is ignored."""
        key = self.key_of(value)
        if key is not None:
            self.add_key(key, count)

    @staticmethod
    def key_of(value: float) -> Key | None:
        """The bucket ``value`` falls in (:data:`ZERO_KEY` for the zero bucket), None for NaN (not counted).
        Worked out once, it can be added to many sketches with :meth:`add_key`."""
        if math.isnan(value):
            return None
        if value <= _MAPPING.min_possible:
            return ZERO_KEY
        return int(_MAPPING.key(min(value, _MAPPING.max_possible)))

    def add_key(self, key: Key, count: int = 1) -> None:
        """Count ``count`` values in bucket ``key`` (from :meth:`key_of`)."""
        if key == ZERO_KEY:
            self.zeros += count
        else:
            self.bins[key] = self.bins.get(key, 0) + count
        self.count += count

    def merge(self, other: Sketch) -> None:
        """Add ``other``'s counts to this sketch."""
        bins = self.bins
        for key, count in other.bins.items():
            bins[key] = bins.get(key, 0) + count
        self.zeros += other.zeros
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 <= q <= 1), None for an empty sketch; ValueError for q outside [0, 1]."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile is between 0 and 1, got {q}")
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if rank < seen:
                return float(_MAPPING.value(key))
        return float(_MAPPING.value(max(self.bins)))

    def dumps(self) -> str:
        """The stored form: ``{"z": zeros, "b": {"bucket": count, ...}}``."""
        return orjson.dumps({"z": self.zeros, "b": {str(k): v for k, v in self.bins.items()}}).decode()

    @classmethod
    def loads(cls, text: str | bytes | None) -> Sketch:
        """A sketch from :meth:`dumps`' text; an empty one from None or ``""``."""
        if not text:
            return cls()
        data = orjson.loads(text)
        return cls({int(k): int(v) for k, v in data.get("b", {}).items()}, int(data.get("z", 0)))

    @staticmethod
    def merge_text(stored: str | None, added: str | None) -> str | None:
        """Two stored sketches (:meth:`dumps`' text, or None) merged, as stored text: :data:`SKETCH_MERGE`
        on SQLite."""
        if not added:
            return stored
        if not stored:
            return added
        sketch = Sketch.loads(stored)
        sketch.merge(Sketch.loads(added))
        return sketch.dumps()

    @classmethod
    def of(cls, values: Iterable[float]) -> Sketch:
        sketch = cls()
        for value in values:
            sketch.add(value)
        return sketch
