"""The trace record: everything lmdeck knows about one request.

One record is written per accepted request, exactly once. Its ``id`` (unique,
time-ordered) is the primary key in the store, which is what makes replaying
the spool after a crash idempotent. ``trace_id`` is the W3C trace id, shared
with the caller's ``traceparent`` when one was sent, so it need not be unique.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def new_trace_id() -> str:
    """A 32-hex-digit id, time-ordered (48-bit milliseconds then 80 random bits)."""
    millis = int(time.time() * 1000) & ((1 << 48) - 1)
    return f"{millis:012x}{os.urandom(10).hex()}"


@dataclass
class TraceRecord:
    id: str = field(default_factory=new_trace_id)
    trace_id: str = field(default_factory=new_trace_id)
    request_id: str = ""
    span_id: str = ""
    parent_span_id: str | None = None
    created_at: float = field(default_factory=time.time)
    kind: str = "chat"
    stream: bool = False
    key_id: str | None = None
    team_id: str | None = None
    user: str | None = None
    route: str | None = None
    target: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    bundle_hash: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_ms: float | None = None
    status_code: int = 200
    error: str | None = None
    error_type: str | None = None
    retries: int = 0
    fallback_used: bool = False
    cache_hit: bool = False
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    request_body: Any = None
    response_body: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def gateway_overhead_ms(self) -> float | None:
        if self.upstream_ms is None:
            return None
        return max(self.latency_ms - self.upstream_ms, 0.0)
