"""A request an upstream can take in the protocol it came in through, and what that upstream answered.

``/v1/messages`` is served by translating the request into chat so that every pipeline step
applies; a target whose provider speaks Anthropic's Messages API natively can still receive the
client's body as sent (model replaced by the target's), with no double translation. The ingress
attaches a :class:`NativeExchange` to the chat request it runs; a provider that speaks the
protocol asks it for the body, and leaves the upstream's answer (whole, or stream events) in it::

    exchange = NativeExchange(Ingress("messages", raw), chat)
    attach(chat, exchange)
    ...                                                       # in the provider:
    native = exchange_of(request)
    body = native.body_for(request, "messages", "claude-sonnet-4-5") if native else None

``body_for`` answers only while the request still asks exactly what was translated (a step that
rewrote it, such as a guardrail's redaction, a compression or an experiment's variant, makes the
original body stale) and the ingress's ``native_ok`` holds; otherwise the provider translates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lmdeck.pipeline.ingress import Ingress, IngressProtocol

#: The private attribute of a chat request that carries its exchange.
ATTRIBUTE = "_lmdeck_native"


def asked(request: BaseModel) -> dict[str, Any]:
    """What ``request`` asks, less the model (routing names the target's)."""
    return request.model_dump(exclude={"model"}, exclude_none=True)


@dataclass
class NativeExchange:
    """The original body of a translated request, and the native upstream's answer to it.

    ``answer``: the upstream's whole answer as it sent it. ``events``: the ``(name, event)`` pairs of
    its stream not yet relayed to the client; ``relayed`` counts those that were.
    """

    ingress: Ingress
    translated: dict[str, Any]
    answer: dict[str, Any] | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    relayed: int = 0

    @classmethod
    def of(cls, ingress: Ingress, request: BaseModel) -> NativeExchange:
        return cls(ingress, asked(request))

    def body_for(self, request: BaseModel, protocol: IngressProtocol, model: str) -> dict[str, Any] | None:
        """The original body for ``model``, or None when it may not be sent as is (see the module docs)."""
        if self.ingress.protocol != protocol or not self.ingress.native_ok:
            return None
        if asked(request) != self.translated:
            return None
        return {**self.ingress.body, "model": model}

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        """The stream events that arrived since the last drain."""
        events, self.events = self.events, []
        self.relayed += len(events)
        return events


def attach(request: BaseModel, exchange: NativeExchange) -> None:
    """Carry ``exchange`` on ``request`` (and on copies steps make of it)."""
    private = request.__pydantic_private__
    if private is None:
        object.__setattr__(request, "__pydantic_private__", {ATTRIBUTE: exchange})
    else:
        private[ATTRIBUTE] = exchange


def exchange_of(request: BaseModel) -> NativeExchange | None:
    """The exchange attached to ``request``, if any."""
    private = getattr(request, "__pydantic_private__", None) or {}
    found = private.get(ATTRIBUTE)
    return found if isinstance(found, NativeExchange) else None
