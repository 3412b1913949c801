"""``/v1/messages``: Anthropic's Messages API (see :mod:`lmdeck.gateway.ingress.messages.serving`).

The key is read from ``x-api-key`` (as Anthropic's clients send it) or ``Authorization: Bearer``:
the same lmdeck keys, with the same rules. Every failure on these routes is answered in Anthropic's
error shape (see :mod:`lmdeck.gateway.ingress.messages.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lmdeck.app.body_schema import documented_body
from lmdeck.app.boundary import GuardedRoute
from lmdeck.app.services import gateway_of
from lmdeck.gateway.ingress.messages.errors import error_response
from lmdeck.gateway.ingress.messages.serving import MessagesServing
from lmdeck.policy.auth import checked_in_pipeline
from lmdeck.policy.estimate import estimate
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.protocol.messages import CountTokensRequest, MessagesRequest

#: Any valid key: the pipeline's authenticate step checks it and applies the key's rules.
INFERENCE = checked_in_pipeline("inference")


def with_api_key(scope: Scope) -> Scope:
    """``scope`` with an ``x-api-key`` presented as the bearer key lmdeck reads; a 400 when two keys differ."""
    headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
    keys = [value for name, value in headers if name == b"x-api-key"]
    if not keys:
        return scope
    bearer = [value for name, value in headers if name == b"authorization"]
    if bearer:
        if bearer[0].partition(b" ")[2].strip() != keys[0].strip():
            raise APIError(
                400,
                "the request carries two different keys (x-api-key and Authorization): send one",
                code="conflicting_api_keys",
            )
        return scope
    return {**scope, "headers": [*headers, (b"authorization", b"Bearer " + keys[0].strip())]}


class MessagesRoute(GuardedRoute):
    """A route of the Messages API: ``x-api-key`` read as the key; failures in Anthropic's shape."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            scope = with_api_key(scope)
        except APIError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await super().handle(scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return error_response(exc)

        return answered


router = APIRouter(prefix="/v1", tags=["anthropic"], route_class=MessagesRoute)


def prompt_estimate(body: ChatCompletionRequest) -> int:
    """lmdeck's estimate of a chat request's prompt tokens (about four bytes a token)."""
    return estimate(body, assumed_max_tokens=0).prompt


def messages_of(request: Request) -> MessagesServing:
    gateway = gateway_of(request)
    return MessagesServing(gateway.serving, gateway.router, prompt_estimate)


@router.post(
    "/messages",
    summary="Create a message (Anthropic's Messages API)",
    openapi_extra={**INFERENCE, **documented_body(MessagesRequest)},
)
async def create_message(request: Request) -> Response:
    return await messages_of(request).create(request)


@router.post(
    "/messages/count_tokens",
    summary="Count a message's input tokens (Anthropic's Messages API)",
    openapi_extra={**INFERENCE, **documented_body(CountTokensRequest)},
)
async def count_message_tokens(request: Request) -> Response:
    return await messages_of(request).count_tokens(request)
