"""Nearest-neighbour search over the embeddings of cached requests, one HNSW graph per partition.

A *partition* is the exact part of a request that a semantic match may never cross (the shape
digest of :func:`lmdeck.cache.keys.semantic_parts`: tenant scope, bundle hash, route, system
prompt, tools, response_format, sampling parameters). Each partition is its own ``hnswlib``
graph, so a lookup can only ever see entries of its own tenant and shape. Vectors are the
L2-normalized sentence embeddings; similarity is cosine (1.0 = same direction). Labels are
the caller's int64 ids of entries.

hnswlib was chosen over usearch and faiss-cpu by measurement (docs/benchmarks.md): the
fastest build and query on this hardware, deletion with slot reuse, and a plain file format.
The class is not thread-safe: one thread (the semantic store's) calls it::

    index = VectorIndex(dimensions=384)
    index.add("shape-a", 7, vector)
    index.search("shape-a", query, k=4)   # [(7, 0.97)]: (label, cosine similarity), best first
    index.remove(7)
    index.save(Path("semantic-index"))    # one file per partition + manifest.json
    VectorIndex.load(Path("semantic-index"), 384, expected={"shape-a": {8, 9}})  # None unless it matches
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hnswlib
import numpy as np

__all__ = ["VectorIndex"]

log = logging.getLogger(__name__)

#: Graph parameters: M links per node, ef at build and at search (recall against speed, measured).
M = 16
EF_CONSTRUCTION = 128
EF_SEARCH = 64
_INITIAL_CAPACITY = 64
_PARTITION_NAME = re.compile(r"^[0-9A-Za-z_-]{1,128}$")


@dataclass
class _Partition:
    graph: hnswlib.Index
    labels: set[int] = field(default_factory=set)


class VectorIndex:
    """Per-partition HNSW graphs of unit vectors (see the module docstring)."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._partitions: dict[str, _Partition] = {}
        self._where: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._where)

    def partitions(self) -> dict[str, set[int]]:
        """Each partition's live labels."""
        return {name: set(p.labels) for name, p in self._partitions.items()}

    def _graph(self, capacity: int) -> hnswlib.Index:
        graph = hnswlib.Index(space="cosine", dim=self.dimensions)
        graph.init_index(max_elements=capacity, ef_construction=EF_CONSTRUCTION, M=M, allow_replace_deleted=True)
        graph.set_ef(EF_SEARCH)
        graph.set_num_threads(1)
        return graph

    def add(self, partition: str, label: int, vector: Sequence[float] | np.ndarray) -> None:
        """Index ``vector`` (``dimensions`` floats) under ``label`` in ``partition``; a label already
        indexed anywhere is moved. Raises ``ValueError`` on a vector of the wrong size."""
        row = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if row.shape[1] != self.dimensions:
            raise ValueError(f"a vector of {row.shape[1]} dimensions given to an index of {self.dimensions}")
        if label in self._where:
            self.remove(label)
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(self._graph(_INITIAL_CAPACITY))
        graph = part.graph
        if graph.get_current_count() >= graph.get_max_elements() and len(part.labels) >= graph.get_max_elements():
            graph.resize_index(2 * graph.get_max_elements())
        graph.add_items(row, np.asarray([label], dtype=np.int64), replace_deleted=True)
        part.labels.add(label)
        self._where[label] = partition

    def search(self, partition: str, vector: Sequence[float] | np.ndarray, k: int = 4) -> list[tuple[int, float]]:
        """Up to ``k`` ``(label, cosine similarity)`` of ``partition``, most similar first."""
        part = self._partitions.get(partition)
        if part is None or not part.labels:
            return []
        row = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        labels, distances = part.graph.knn_query(row, k=min(k, len(part.labels)))
        return [(int(label), 1.0 - float(distance)) for label, distance in zip(labels[0], distances[0], strict=True)]

    def remove(self, label: int) -> bool:
        """Forget ``label``; True when it was indexed."""
        partition = self._where.pop(label, None)
        if partition is None:
            return False
        part = self._partitions[partition]
        part.graph.mark_deleted(label)
        part.labels.discard(label)
        if not part.labels:
            del self._partitions[partition]
        return True

    def clear(self) -> None:
        self._partitions.clear()
        self._where.clear()

    def save(self, directory: Path) -> None:
        """Write one ``<partition>.hnsw`` file per partition and ``manifest.json`` naming their labels;
        files of partitions that no longer exist are removed."""
        directory.mkdir(parents=True, exist_ok=True)
        manifest: dict[str, list[int]] = {}
        for name, part in self._partitions.items():
            if not _PARTITION_NAME.match(name):
                raise ValueError(f"partition name {name!r} is not a file name: use hex digests")
            part.graph.save_index(str(directory / f"{name}.hnsw"))
            manifest[name] = sorted(part.labels)
        for stale in directory.glob("*.hnsw"):
            if stale.stem not in manifest:
                stale.unlink()
        tmp = directory / "manifest.json.tmp"
        tmp.write_text(json.dumps({"dimensions": self.dimensions, "partitions": manifest}))
        tmp.replace(directory / "manifest.json")

    @classmethod
    def load(cls, directory: Path, dimensions: int, expected: Mapping[str, set[int]]) -> VectorIndex | None:
        """The index saved in ``directory`` when it holds every label of ``expected`` (partition →
        labels, what the entry store has); labels it holds beyond those are dropped. None when the
        files are missing, unreadable or lack an entry: the caller rebuilds from the vectors."""
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            saved: dict[str, list[int]] = manifest["partitions"]
            if int(manifest["dimensions"]) != dimensions:
                return None
            index = cls(dimensions)
            for name, labels in expected.items():
                if not labels:
                    continue
                if not labels <= set(saved.get(name, [])):
                    return None
                graph = hnswlib.Index(space="cosine", dim=dimensions)
                graph.load_index(str(directory / f"{name}.hnsw"), allow_replace_deleted=True)
                graph.set_ef(EF_SEARCH)
                graph.set_num_threads(1)
                for extra in set(saved[name]) - labels:
                    graph.mark_deleted(extra)
                index._partitions[name] = _Partition(graph, set(labels))
                index._where.update(dict.fromkeys(labels, name))
            return index
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            log.warning(
                "semantic cache index in %s not usable (%s): rebuilding it from the stored entries", directory, exc
            )
            return None
