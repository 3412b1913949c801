"""Which public protocol a request came in through, when it was not OpenAI's Chat Completions.

``/v1/responses`` (OpenAI's Responses API) and ``/v1/messages`` (Anthropic's Messages API) are
served by translating the request into a chat completion, so that every pipeline step (auth,
limits, budgets, guardrails, cache, tracing, releases) applies unchanged. The original body is
kept here so that a target whose provider speaks the same protocol natively can receive it as
sent, with no double translation::

    ctx.ingress = Ingress(protocol="messages", body=raw_json_object)
    if ctx.ingress is not None and ctx.ingress.protocol == "messages": ...

``body`` is the request's decoded JSON object exactly as the client sent it (never mutated by
steps: a step that rewrites the chat body, such as a guardrail's redaction, makes native
pass-through unsafe and must clear ``native_ok``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

IngressProtocol = Literal["responses", "messages"]


@dataclass
class Ingress:
    """The protocol a request arrived in and its original JSON body.

    ``native_ok`` starts True and is cleared by any step that changes what the chat body asks
    (redaction, compression, a prompt template applied), after which only the translated chat
    body may be sent upstream.
    """

    protocol: IngressProtocol
    body: dict[str, Any] = field(default_factory=dict)
    native_ok: bool = True
