from pathlib import Path

import numpy as np
import pytest

from lmdeck.cache.semantic.index import VectorIndex


def unit(rows: int, dims: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((rows, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_search_finds_the_same_vector_first_with_similarity_one() -> None:
    index = VectorIndex(16)
    vectors = unit(100)
    for label, vector in enumerate(vectors):
        index.add("p", label, vector)
    (best, similarity), *_ = index.search("p", vectors[42], k=3)
    assert best == 42
    assert similarity == pytest.approx(1.0, abs=1e-5)


def test_partitions_never_see_each_other() -> None:
    index = VectorIndex(16)
    vectors = unit(2)
    index.add("team-a", 1, vectors[0])
    assert index.search("team-b", vectors[0]) == []
    assert [label for label, _ in index.search("team-a", vectors[0])] == [1]


def test_removed_labels_are_not_found_and_their_slots_are_reused() -> None:
    index = VectorIndex(16)
    vectors = unit(300)
    for label in range(200):
        index.add("p", label, vectors[label])
    for label in range(0, 200, 2):
        assert index.remove(label)
    assert not index.remove(0)
    for label in range(200, 300):
        index.add("p", label, vectors[label])
    assert len(index) == 200
    found = {label for label, _ in index.search("p", vectors[10], k=10)}
    assert 10 not in found
    assert index.search("p", vectors[250], k=1)[0][0] == 250


def test_a_vector_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        VectorIndex(16).add("p", 1, [0.0] * 8)


def test_saved_index_loads_when_it_holds_the_expected_labels(tmp_path: Path) -> None:
    index = VectorIndex(16)
    vectors = unit(50)
    for label in range(50):
        index.add("a" if label % 2 else "b", label, vectors[label])
    index.save(tmp_path)
    expected = index.partitions()
    expected["a"].discard(1)  # an entry gone since the save (expired) is dropped on load
    loaded = VectorIndex.load(tmp_path, 16, expected)
    assert loaded is not None
    assert len(loaded) == 49
    assert loaded.search("a", vectors[3], k=1)[0][0] == 3
    assert 1 not in {label for label, _ in loaded.search("a", vectors[1], k=5)}


def test_load_refuses_missing_files_or_labels_so_the_caller_rebuilds(tmp_path: Path) -> None:
    assert VectorIndex.load(tmp_path, 16, {"a": {1}}) is None
    index = VectorIndex(16)
    index.add("a", 1, unit(1)[0])
    index.save(tmp_path)
    assert VectorIndex.load(tmp_path, 16, {"a": {1, 2}}) is None
    assert VectorIndex.load(tmp_path, 32, {"a": {1}}) is None
    (tmp_path / "a.hnsw").write_bytes(b"garbage")
    assert VectorIndex.load(tmp_path, 16, {"a": {1}}) is None
