"""Run a chat request translated from another public protocol through the gateway's pipeline.

A route for another protocol parses its own body, translates it into a
:class:`~lmdeck.protocol.ChatCompletionRequest`, and hands it here with an ``answer`` callable that
turns the pipeline's :class:`~lmdeck.pipeline.context.Completed` or
:class:`~lmdeck.pipeline.context.Streamed` back into its protocol's response::

    async def answer(ctx: RequestContext, result: Result) -> Response: ...

    return await run_translated(serving, request, chat_body, Ingress("responses", raw), answer)

Every pipeline step (auth, limits, budgets, guardrails, cache, tracing, releases) applies as for chat;
the trace is the chat request's, with ``metadata.ingress`` naming the protocol it came in through.
A client that disconnects before the answer is ready cancels the work (as for chat, see
:mod:`lmdeck.gateway.disconnect`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from lmdeck.gateway.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected, cancel_on_disconnect
from lmdeck.gateway.errors import api_error_response, upstream_to_api_error
from lmdeck.gateway.serving import InferenceServing
from lmdeck.pipeline.context import RequestContext, Result
from lmdeck.pipeline.identity import bearer_token, principal_for
from lmdeck.pipeline.ingress import Ingress
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.providers.base import UpstreamError

#: Turns the pipeline's result into the protocol's own HTTP response.
Answer = Callable[[RequestContext, Result], Awaitable[Response]]
#: Turns a failure the pipeline raised before answering into the protocol's own error response.
OnError = Callable[[UpstreamError], Response]


def openai_error(exc: UpstreamError) -> Response:
    """An upstream failure in OpenAI's error shape, as ``/v1/chat/completions`` answers it."""
    return api_error_response(upstream_to_api_error(exc))


def translated_context(
    serving: InferenceServing, request: Request, body: ChatCompletionRequest, ingress: Ingress
) -> RequestContext:
    """The chat request context for ``body``, marked as having come in through ``ingress``."""
    ctx = serving.context(request, "chat", body)
    ctx.ingress = ingress
    ctx.trace.metadata["ingress"] = ingress.protocol
    return ctx


async def run_translated(
    serving: InferenceServing,
    request: Request,
    body: ChatCompletionRequest,
    ingress: Ingress,
    answer: Answer,
    on_error: OnError = openai_error,
    *,
    principal: Principal | None = None,
) -> Response:
    """Authenticate, run ``body`` through ``serving``'s pipeline and answer with ``answer``.

    Raises :class:`~lmdeck.protocol.APIError` (a missing or refused key, a step's refusal) for the
    app's error handler; an :class:`~lmdeck.providers.base.UpstreamError` raised before ``answer``
    returns is answered by ``on_error``. A client gone before the answer is ready gets a bare 499.
    ``principal``: the caller, when the route has authenticated it already (to read its stored state).
    """
    if principal is None:
        principal = await principal_for(serving.authenticator, bearer_token(request))
    ctx = translated_context(serving, request, body, ingress)
    ctx.principal = principal

    async def work() -> Response:
        try:
            return await answer(ctx, await serving.pipeline.run(ctx))
        except UpstreamError as exc:
            return on_error(exc)

    try:
        return await cancel_on_disconnect(request.receive, work())
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
