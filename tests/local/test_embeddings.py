"""all-MiniLM-L6-v2 served in-process: shape, normalization, meaning, and batching across requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import torch

from lmdeck.local.embeddings import EmbeddingBatcher, SentenceEmbedder, minilm_dir

#: The first components of sentence-transformers' own output for these texts (normalize_embeddings=True).
REFERENCE = {
    "The quick brown fox jumps over the lazy dog.": [0.04393, 0.05893, 0.04818, 0.07755, 0.02674, -0.03763],
    "lmdeck serves models": [-0.04861, -0.104, 0.03597, -0.0161, 0.06247, 0.07678],
}


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder.load(minilm_dir(), torch.device("cpu"))


@pytest.fixture
def batcher(embedder: SentenceEmbedder) -> Iterator[EmbeddingBatcher]:
    b = EmbeddingBatcher(embedder)
    yield b
    b.close()


def cosine(a: list[float], b: list[float]) -> float:
    return float(torch.dot(torch.tensor(a), torch.tensor(b)))


async def test_vectors_are_384_dimensional_and_normalized(batcher: EmbeddingBatcher) -> None:
    vectors, tokens = await batcher.embed(["hello world", "a second, longer sentence about something"])
    assert [len(v) for v in vectors] == [384, 384]
    assert all(abs(sum(x * x for x in v) - 1.0) < 1e-4 for v in vectors)
    assert tokens[0] < tokens[1]


async def test_vectors_match_the_reference_implementation(batcher: EmbeddingBatcher) -> None:
    vectors, _ = await batcher.embed(list(REFERENCE))
    for vector, expected in zip(vectors, REFERENCE.values(), strict=True):
        assert vector[: len(expected)] == pytest.approx(expected, abs=2e-4)


async def test_similar_sentences_score_higher_than_unrelated_ones(batcher: EmbeddingBatcher) -> None:
    (cat, kitten, invoice), _ = await batcher.embed(
        ["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "Quarterly invoices are due on Friday."]
    )
    assert cosine(cat, kitten) > cosine(cat, invoice) + 0.3


async def test_padding_does_not_change_a_vector(batcher: EmbeddingBatcher) -> None:
    (alone,), _ = await batcher.embed(["short"])
    (together, _), _ = await batcher.embed(["short", "a much longer text that forces padding of the short one"])
    assert together == pytest.approx(alone, abs=1e-5)


async def test_concurrent_requests_share_forward_passes(batcher: EmbeddingBatcher) -> None:
    texts = [[f"sentence number {i}", f"another {i}"] for i in range(6)]
    results = await asyncio.gather(*(batcher.embed(t) for t in texts))
    assert [len(vectors) for vectors, _ in results] == [2] * 6
    assert batcher.stats.requests == 6
    assert batcher.stats.forward_passes < 6
