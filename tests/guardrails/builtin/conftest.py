"""The bundled sentence encoder, loaded once for the built-in guardrails' tests, lent as ``GuardResources.embed``."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from lmdeck.guardrails.base import Embed
from lmdeck.local.embeddings import SentenceEmbedder, minilm_dir


@pytest.fixture(scope="session")
def minilm() -> SentenceEmbedder:
    return SentenceEmbedder.load(minilm_dir(), torch.device("cpu"))


@pytest.fixture(scope="session")
def embed(minilm: SentenceEmbedder) -> Embed:
    """What the gateway lends: unit all-MiniLM-L6-v2 vectors of the texts, in order."""

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        vectors, _ = minilm.encode(list(texts))
        return [[float(x) for x in row] for row in vectors.tolist()]

    return embed
