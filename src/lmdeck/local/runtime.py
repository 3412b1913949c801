"""The local models one gateway has loaded: one engine per model, shared by every route that uses it.

Models load on first use, in a worker thread so the event loop keeps serving (and PyTorch is
imported only then, so a gateway without local routes starts without it). Each
provider that uses the runtime holds a reference; the last one to let go stops the
engine threads::

    runtime = LocalRuntime(settings.local)
    runtime.acquire()
    engine = await runtime.engine("demo")
    batcher = await runtime.embedder("all-minilm-l6-v2")
    runtime.release()      # the last release closes everything
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from lmdeck.local.catalog import LocalModelSpec, ModelCatalog
from lmdeck.settings import LocalSettings

if TYPE_CHECKING:
    from lmdeck.local.embeddings import EmbeddingBatcher
    from lmdeck.local.engine import LocalEngine


class LocalRuntime:
    """Loaded local models, keyed by name (and quantization, for generative models)."""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.catalog = ModelCatalog(Path(settings.model_dir) if settings.model_dir else None)
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, str], LocalEngine] = {}
        self._embedders: dict[str, EmbeddingBatcher] = {}
        self._users = 0

    def find(self, name: str) -> LocalModelSpec:
        return self.catalog.find(name)

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.close()

    def _apply_threads(self) -> None:
        import torch

        # PyTorch's intra-op pool is per process; small models on a busy machine do better with fewer threads.
        if self.settings.threads and torch.get_num_threads() != self.settings.threads:
            torch.set_num_threads(self.settings.threads)

    def _load_engine(self, name: str, quantize: str) -> LocalEngine:
        from lmdeck.local.engine import LocalEngine
        from lmdeck.local.loading import load_causal_lm, resolve_device

        self._apply_threads()
        with self._lock:
            key = (name, quantize)
            if key not in self._engines:
                spec = self.catalog.find(name)
                lm = load_causal_lm(
                    spec.path, name=name, device=resolve_device(self.settings.device), quantize=quantize
                )
                self._engines[key] = LocalEngine(
                    lm, max_batch_size=self.settings.max_batch_size, max_queue=self.settings.max_queue
                )
            return self._engines[key]

    def _load_embedder(self, name: str) -> EmbeddingBatcher:
        from lmdeck.local.embeddings import EmbeddingBatcher, SentenceEmbedder
        from lmdeck.local.loading import resolve_device

        self._apply_threads()
        with self._lock:
            if name not in self._embedders:
                spec = self.catalog.find(name)
                embedder = SentenceEmbedder.load(spec.path, resolve_device(self.settings.device))
                self._embedders[name] = EmbeddingBatcher(embedder)
            return self._embedders[name]

    def loaded_engine(self, name: str, quantize: str | None = None) -> LocalEngine | None:
        """The engine for ``name`` if it is already loaded."""
        return self._engines.get((name, quantize or self.settings.quantize))

    async def engine(self, name: str, quantize: str | None = None) -> LocalEngine:
        """The engine serving ``name``, loading the model on first use."""
        key = (name, quantize or self.settings.quantize)
        found = self._engines.get(key)
        return found if found is not None else await asyncio.to_thread(self._load_engine, *key)

    async def embedder(self, name: str) -> EmbeddingBatcher:
        found = self._embedders.get(name)
        return found if found is not None else await asyncio.to_thread(self._load_embedder, name)

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
            embedders, self._embedders = list(self._embedders.values()), {}
        for engine in engines:
            engine.close()
        for batcher in embedders:
            batcher.close()
