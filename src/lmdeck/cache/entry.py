"""One cached response, as a store keeps it and as a hit replays it.

An entry holds the whole response as the client received it (``response``: the JSON of a
``chat.completion``, ``text_completion`` or embeddings ``list``) and, when the original
answer was streamed, its chunks in order (``chunks``: the JSON of each
``chat.completion.chunk``/``text_completion`` chunk, the usage-only chunk included), so a hit
replays a stream cut exactly like the original. An answer first given as JSON and asked for
again as a stream is cut by :mod:`lmdeck.cache.replay`; one first streamed and asked for as
JSON is served from ``response``, assembled from the chunks when it was stored.

``input_tokens``/``output_tokens`` are the original usage and ``cost_micros`` what the
original upstream call cost (micro-dollars, :mod:`lmdeck.money`): a hit saves exactly that.
``created_at``/``expires_at`` are Unix seconds; ``source_trace_id`` names the trace (its
``id``) of the request that paid for the answer::

    entry = CacheEntry(key=k, scope="team:t1", kind="chat", route="gpt-4o", bundle_hash=h,
                       response=resp_json, chunks=None, source_trace_id=trace.id,
                       created_at=now, expires_at=now + 3600, input_tokens=12,
                       output_tokens=40, cost_micros=310)
    CacheEntry.from_json(entry.to_json()) == entry      # True
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

#: Which exact/semantic lookup answered; written on the trace as ``cache``.
CacheSource = Literal["exact", "semantic"]


@dataclass(frozen=True)
class CacheEntry:
    """A response kept for replay (see the module docstring for each field's meaning and unit)."""

    key: str
    scope: str
    kind: Literal["chat", "completions", "embeddings"]
    route: str
    bundle_hash: str | None
    response: dict[str, Any]
    chunks: list[dict[str, Any]] | None
    source_trace_id: str
    created_at: float
    expires_at: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micros: int = 0
    upstream_model: str | None = None
    provider: str | None = None
    #: Extra data a lookup keeps beside the response (the semantic cache's request text and shape).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def saved_tokens(self) -> int:
        """Tokens a hit does not send upstream: the original's prompt and completion tokens."""
        return self.input_tokens + self.output_tokens

    def fresh(self, at: float | None = None) -> bool:
        """True until ``expires_at`` (Unix seconds; ``at`` defaults to now)."""
        return (time.time() if at is None else at) < self.expires_at

    def age_s(self, at: float | None = None) -> int:
        """Whole seconds since the entry was stored (the response's ``age`` header)."""
        return max(0, int((time.time() if at is None else at) - self.created_at))

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> CacheEntry:
        """The entry :meth:`to_json` wrote; raises ``ValueError``/``TypeError`` on anything else."""
        loaded = orjson.loads(data)
        if not isinstance(loaded, dict):
            raise ValueError("a cache entry is a JSON object")
        return cls(**loaded)
