"""The state one request carries through the pipeline, and what the pipeline returns."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

from pydantic import BaseModel

from lmdeck.pipeline.ingress import Ingress
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.protocol.flags import FlagValue
from lmdeck.protocol.traces import TraceRecord

Kind = Literal["chat", "completions", "embeddings"]
Body = ChatCompletionRequest | CompletionRequest | EmbeddingRequest
T = TypeVar("T")


class Slot(Generic[T]):
    """The typed key of one value a step leaves on the request for steps after it.

    The feature that owns the value's type declares the slot, so that a step reads back exactly
    the type another step put there; two slots never collide, whatever their names::

        SNAPSHOT: Slot[RegistrySnapshot] = Slot("registry.snapshot")
        ctx.slots.put(SNAPSHOT, snapshot)
        snapshot = ctx.slots.get(SNAPSHOT)          # RegistrySnapshot | None
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name  # for reading logs and reprs only; slots are told apart by identity

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


class Slots:
    """The values one request's steps left in its slots (see :class:`Slot`)."""

    def __init__(self) -> None:
        self._values: dict[Slot[Any], object] = {}

    def get(self, slot: Slot[T]) -> T | None:
        """The value put in ``slot``, or None when no step put one."""
        return cast("T | None", self._values.get(slot))

    def put(self, slot: Slot[T], value: T) -> None:
        self._values[slot] = value

    def __contains__(self, slot: Slot[Any]) -> bool:
        return slot in self._values


@dataclass
class RequestContext:
    """One request on its way through the pipeline.

    Steps read and annotate it; ``trace`` is the record that will be written
    once the request ends, whatever way it ends. ``upstream_attempts`` counts the
    upstream calls made for it so far (a retry or a fallback is one more); ``slots``
    holds what one step leaves for another, by typed :class:`Slot`. ``after_response`` holds
    callables run once the whole response has been sent to the client (a stream to its end),
    never before: work that must not delay or change the answer (the shadow's mirrors); one
    that raises is logged, and a response the client abandoned runs none of them. ``flags`` are the
    feature flags' values for this request (set by the ``flags`` step; each flag is
    evaluated when first read, and an unknown name is a ``KeyError``). ``ingress`` names the public
    protocol a request came in through when it is not Chat Completions (see :mod:`lmdeck.pipeline.ingress`).
    """

    kind: Kind
    body: Body
    request_id: str
    trace: TraceRecord
    headers: Mapping[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    route_name: str = ""
    client_token: str | None = None
    upstream_attempts: int = 0
    slots: Slots = field(default_factory=Slots)
    flags: Mapping[str, FlagValue] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    after_response: list[Callable[[], None]] = field(default_factory=list)
    ingress: Ingress | None = None

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
