"""The local models one gateway has loaded: one engine per model, shared by every route that uses it.

A gateway starts loading the models its routes name as soon as it starts (:meth:`LocalRuntime.preload`),
one at a time on a loader thread, so the event loop keeps serving meanwhile; PyTorch is imported only
then, so a gateway without local routes starts without it. ``loading()`` names the models not ready yet
(``/health/ready`` reports them), and a request for one of them waits for its load to finish (bounded
by the request's own timeout) instead of starting a second load. A load that fails is retried by the
next request. Each provider that uses the runtime holds a reference; the last one to let go stops the
engine threads::

    runtime = LocalRuntime(settings.local)
    runtime.acquire()
    runtime.preload("demo")                       # log: "loading demo model…", then "demo model ready in 1.2 s"
    runtime.loading()                             # ["demo"] until it is ready
    engine = await runtime.engine("demo")         # waits for the load
    batcher = await runtime.embedder("all-minilm-l6-v2")
    runtime.release()      # the last release closes everything
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lmdeck.local.catalog import LocalModelSpec, ModelCatalog
from lmdeck.settings import LocalSettings

if TYPE_CHECKING:
    from lmdeck.local.embeddings import EmbeddingBatcher
    from lmdeck.local.engine import LocalEngine

log = logging.getLogger(__name__)

T = TypeVar("T")


class LocalRuntime:
    """Loaded local models, keyed by name (and quantization, for generative models)."""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.catalog = ModelCatalog(Path(settings.model_dir) if settings.model_dir else None)
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, str], LocalEngine] = {}
        self._embedders: dict[str, EmbeddingBatcher] = {}
        self._pending: dict[tuple[str, str], Future[Any]] = {}
        self._loader: ThreadPoolExecutor | None = None
        self._closes = 0  # a load that finishes after a close() must not bring its model back
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

    # -- loading, on the loader thread ----------------------------------------------------------------

    def _load_engine(self, name: str, quantize: str) -> LocalEngine:
        from lmdeck.local.engine import LocalEngine
        from lmdeck.local.loading import load_causal_lm, resolve_device

        key = (name, quantize)
        found = self._engines.get(key)
        if found is not None:
            return found
        closes = self._closes
        self._apply_threads()
        spec = self.catalog.find(name)
        lm = load_causal_lm(spec.path, name=name, device=resolve_device(self.settings.device), quantize=quantize)
        engine = LocalEngine(
            lm,
            max_batch_size=self.settings.max_batch_size,
            max_queue=self.settings.max_queue,
            max_adapters=self.settings.max_adapters,
        )
        with self._lock:
            kept = closes == self._closes
            if kept:
                self._engines[key] = engine
        if not kept:
            engine.close()
            raise RuntimeError(f"the local models were closed while {name!r} loaded")
        return engine

    def _load_embedder(self, name: str) -> EmbeddingBatcher:
        from lmdeck.local.embeddings import EmbeddingBatcher, SentenceEmbedder
        from lmdeck.local.loading import resolve_device

        found = self._embedders.get(name)
        if found is not None:
            return found
        closes = self._closes
        self._apply_threads()
        spec = self.catalog.find(name)
        batcher = EmbeddingBatcher(SentenceEmbedder.load(spec.path, resolve_device(self.settings.device)))
        with self._lock:
            kept = closes == self._closes
            if kept:
                self._embedders[name] = batcher
        if not kept:
            batcher.close()
            raise RuntimeError(f"the local models were closed while {name!r} loaded")
        return batcher

    @staticmethod
    def _timed(label: str, load: Callable[[], T]) -> T:
        log.info("loading %s model…", label)
        began = time.perf_counter()
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # one log line per model says it instead
        try:
            loaded = load()
        except Exception as exc:
            log.error("%s model failed to load after %.1f s: %s", label, time.perf_counter() - began, exc)
            raise
        log.info("%s model ready in %.1f s", label, time.perf_counter() - began)
        return loaded

    def _start(self, key: tuple[str, str], label: str, load: Callable[[], T]) -> Future[T]:
        """The load of ``key``: the one under way, or a new one queued on the loader thread."""
        with self._lock:
            future = self._pending.get(key)
            if future is not None:
                return future
            if self._loader is None:
                self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmdeck-model-loader")
            future = self._loader.submit(self._timed, label, load)
            self._pending[key] = future
        # Outside the lock: a load that already ended runs the callback here, and it takes the lock.
        future.add_done_callback(lambda done: self._settled(key, done))
        return future

    def _settled(self, key: tuple[str, str], future: Future[Any]) -> None:
        with self._lock:
            if self._pending.get(key) is future:
                del self._pending[key]  # loaded (now in the tables) or failed (the next request retries)

    def _engine_load(self, name: str, quantize: str) -> Future[LocalEngine]:
        label = name if quantize == "none" else f"{name} ({quantize})"
        return self._start(("generate:" + name, quantize), label, lambda: self._load_engine(name, quantize))

    def _embedder_load(self, name: str) -> Future[EmbeddingBatcher]:
        return self._start(("embed:" + name, ""), name, lambda: self._load_embedder(name))

    # -- the event loop's side -------------------------------------------------------------------------

    def preload(self, name: str, quantize: str | None = None) -> None:
        """Start loading ``name`` in the background unless it is loaded or loading (never blocks)."""
        if self.catalog.find(name).task == "embed":
            if name not in self._embedders:
                self._embedder_load(name)
            return
        quantize = quantize or self.settings.quantize
        if (name, quantize) not in self._engines:
            self._engine_load(name, quantize)

    def loading(self) -> list[str]:
        """The models whose load is queued or under way (``demo``, ``demo (int8)``...)."""
        with self._lock:
            keys = [key for key, future in self._pending.items() if not future.done()]
        return [name.partition(":")[2] + (f" ({q})" if q not in ("", "none") else "") for name, q in keys]

    def loaded_engine(self, name: str, quantize: str | None = None) -> LocalEngine | None:
        """The engine for ``name`` if it is already loaded."""
        return self._engines.get((name, quantize or self.settings.quantize))

    @staticmethod
    async def _wait(label: str, future: Future[T]) -> T:
        if not future.done():
            log.info("a request for %s waits for the model to load", label)
        # Shielded: a request that gives up (its timeout) must not cancel a load others wait for.
        return await asyncio.shield(asyncio.wrap_future(future))

    async def engine(self, name: str, quantize: str | None = None) -> LocalEngine:
        """The engine serving ``name``, waiting for its load (started now if nobody started it)."""
        quantize = quantize or self.settings.quantize
        found = self._engines.get((name, quantize))
        return found if found is not None else await self._wait(name, self._engine_load(name, quantize))

    async def embedder(self, name: str) -> EmbeddingBatcher:
        found = self._embedders.get(name)
        return found if found is not None else await self._wait(name, self._embedder_load(name))

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
            embedders, self._embedders = list(self._embedders.values()), {}
            loader, self._loader = self._loader, None
            self._pending = {}
            self._closes += 1
        if loader is not None:
            loader.shutdown(wait=False, cancel_futures=True)
        for engine in engines:
            engine.close()
        for batcher in embedders:
            batcher.close()
