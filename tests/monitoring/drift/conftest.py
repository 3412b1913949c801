"""One MiniLM for the drift tests of a module (loading it takes seconds)."""

from __future__ import annotations

import pytest

from lmdeck.monitoring.drift.embedder import PromptEmbedder


@pytest.fixture(scope="session")
def embedder() -> PromptEmbedder:
    return PromptEmbedder()
