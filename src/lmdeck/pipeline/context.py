"""The state one request carries through the pipeline, and what the pipeline returns."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.tracing import TraceRecord

Kind = Literal["chat", "completions", "embeddings"]
Body = ChatCompletionRequest | CompletionRequest | EmbeddingRequest


@dataclass
class RequestContext:
    """One request on its way through the pipeline.

    Steps read and annotate it; ``trace`` is the record that will be written
    once the request ends, whatever way it ends.
    """

    kind: Kind
    body: Body
    request_id: str
    trace: TraceRecord
    headers: Mapping[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    route_name: str = ""
    client_token: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None

    @property
    def stream(self) -> bool:
        return bool(getattr(self.body, "stream", False))

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


@dataclass
class Completed:
    """A whole response."""

    response: BaseModel
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Streamed:
    """A streamed response: OpenAI-shaped chunks, in order."""

    chunks: AsyncIterator[BaseModel]
    headers: dict[str, str] = field(default_factory=dict)


Result = Completed | Streamed
