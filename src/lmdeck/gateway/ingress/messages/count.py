"""``/v1/messages/count_tokens``: the input tokens a Messages request would take on its route's target.

    counter = TokenCounter(router, estimate)
    await counter.count(principal, raw_body)      # int; a 4xx APIError naming what is wrong

The route's first target in its routing order counts: one that takes Messages natively (the
Anthropic provider) asks its upstream's own ``count_tokens`` with the body as sent (model replaced
by the target's); one that can count with its own tokenizer (the local engine, see
:class:`TokenCountingProvider`) does, exactly as it counts a chat prompt; any other is estimated by
``estimate`` (lmdeck's estimator, about four bytes a token). Counting calls no model and is not
traced; the key must be allowed to use the route, as for a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import orjson

from lmdeck.gateway.ingress.messages.request import to_chat
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.serving import parse_body
from lmdeck.pipeline.ingress import Ingress
from lmdeck.pipeline.native import NativeExchange, attach
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.protocol.messages import CountTokensRequest, MessagesRequest

#: Counts a chat request's prompt tokens without a model (lmdeck's estimator).
Estimate = Callable[[ChatCompletionRequest], int]


@runtime_checkable
class TokenCountingProvider(Protocol):
    """A provider that can count a chat request's input tokens as its model would."""

    async def count_tokens(self, request: ChatCompletionRequest) -> int: ...


class TokenCounter:
    """Counts the input tokens of Messages requests (see the module docs)."""

    def __init__(self, router: Router, estimate: Estimate) -> None:
        self.router = router
        self.estimate = estimate

    async def count(self, principal: Principal, raw: bytes) -> int:
        body: CountTokensRequest = parse_body(raw, CountTokensRequest)
        route = self.router.get(body.model)
        if route is None or not principal.may_use(body.model):
            raise APIError(
                404,
                f"the model {body.model!r} does not exist or this key may not use it: GET /v1/models lists those it may",
                param="model",
                code="model_not_found",
            )
        as_message = MessagesRequest.model_validate({**body.model_dump(exclude_none=True), "max_tokens": 1})
        chat = to_chat(as_message)
        original = orjson.loads(raw)
        attach(chat, NativeExchange.of(Ingress("messages", original), chat))
        targets = self.router.order(route)
        if not targets:
            return self.estimate(chat)
        provider = targets[0].provider
        if isinstance(provider, TokenCountingProvider):
            return await provider.count_tokens(chat)
        if body.thinking is not None:
            raise APIError(
                400,
                f"`thinking` is counted only by targets that take Anthropic's Messages API as sent; the model "
                f"{body.model!r} is served by {targets[0].id!r} (provider {targets[0].config.provider})",
                param="thinking",
                code="unsupported_parameter",
            )
        return self.estimate(chat)
