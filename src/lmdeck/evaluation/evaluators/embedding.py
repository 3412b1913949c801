"""Embedding similarity: cosine similarity of output and reference under the local embedding model."""

from __future__ import annotations

import math

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.text import references
from lmdeck.protocol.evaluation import EvaluatorError


def cosine(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        raise EvaluatorError(f"embedding_similarity: vectors of different sizes ({len(a)} and {len(b)})")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class EmbeddingSimilarity:
    """Cosine similarity (clipped to [0, 1]) between the output and the closest reference.

    Embeddings come from ``route`` through the gateway (default: the bundled ``embed``
    route, all-MiniLM-L6-v2 served in-process).
    """

    requires_reference = True

    def __init__(self, ctx: EvaluatorContext, route: str = "embed") -> None:
        self.name = "embedding_similarity"
        self.inference = ctx.require_inference("embedding_similarity")
        self.route = route

    async def evaluate(self, sample: Sample) -> Score:
        refs = references(sample.expected)
        if not refs:
            return Score(0.0, label="no_reference", explanation="the row has no expected answer")
        vectors = await self.inference.embed(self.route, [sample.output, *refs])
        if len(vectors) != len(refs) + 1:
            raise EvaluatorError(f"embedding_similarity: route {self.route!r} returned {len(vectors)} vectors")
        best = max(cosine(vectors[0], v) for v in vectors[1:])
        return Score(min(max(best, 0.0), 1.0), explanation=f"cosine similarity {best:.3f} ({self.route})")


def register(registry: EvaluatorRegistry) -> None:
    registry.add("embedding_similarity", EmbeddingSimilarity)
