"""``/v1/messages``: Anthropic's Messages API served through the chat pipeline.

    serving = MessagesServing(inference_serving, router, estimate)
    await serving.create(request)          # POST /v1/messages (JSON, or SSE when ``stream``)
    await serving.count_tokens(request)    # POST /v1/messages/count_tokens

A request is translated into a chat request (:mod:`.request`) and run through the same pipeline as
``/v1/chat/completions`` (:func:`lmdeck.gateway.ingress.runner.run_translated`): auth, limits,
budgets, guardrails, cache, tracing and releases apply unchanged, and the request is traced once, as
a chat request with ``metadata.ingress: messages``. The answer is translated back (:mod:`.response`,
:mod:`.stream`), unless the target that served it speaks the Messages API natively (the Anthropic
provider): that target receives the client's body as sent (model replaced by the target's) and its
answer, whole or streamed, goes back as it came (see :mod:`lmdeck.pipeline.native`); the pipeline
still sees it in chat's shape, so tokens and cost are traced as for any chat request.

``thinking``, thinking blocks and server tools have no chat form: a request using them is refused
with a 400 naming it unless every target of the route (and of its fallbacks) takes Messages natively.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lmdeck.gateway.ingress.messages.count import Estimate, TokenCounter
from lmdeck.gateway.ingress.messages.errors import error_event, error_response
from lmdeck.gateway.ingress.messages.request import native_only, parse_request, to_chat
from lmdeck.gateway.ingress.messages.response import new_id, to_message
from lmdeck.gateway.ingress.messages.stream import MessageEvents, sse
from lmdeck.gateway.ingress.runner import run_translated
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.state import TargetState
from lmdeck.gateway.serving import InferenceServing, run_after_response
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.pipeline.identity import bearer_token, principal_for
from lmdeck.pipeline.ingress import Ingress
from lmdeck.pipeline.native import NativeExchange, attach
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError, ChatCompletionResponse
from lmdeck.protocol.messages import MessagesRequest
from lmdeck.protocol.wire import wire_dict
from lmdeck.providers.capabilities import capabilities_of


def no_key() -> APIError:
    return APIError(
        401, "no API key: send it as 'x-api-key: <key>' or 'Authorization: Bearer <key>'", code="missing_api_key"
    )


async def caller(inference: InferenceServing, request: Request) -> Principal:
    """The principal behind the request's key (``x-api-key`` is presented as the bearer key by the route)."""
    token = bearer_token(request)
    if not token:
        raise no_key()
    return await principal_for(inference.authenticator, token)


def takes_messages(target: TargetState) -> bool:
    """Whether ``target`` takes a Messages body as the client sent it."""
    return "messages" in capabilities_of(target.provider).native


class MessagesServing:
    """Serves ``/v1/messages`` and ``/v1/messages/count_tokens`` (see the module docs)."""

    def __init__(self, inference: InferenceServing, router: Router, estimate: Estimate) -> None:
        self.inference = inference
        self.router = router
        self.counter = TokenCounter(router, estimate)

    def targets(self, route_name: str) -> list[TargetState]:
        """Every target a request for ``route_name`` may reach: the route's, then its fallbacks'."""
        route = self.router.get(route_name)
        if route is None:
            return []
        chain = [route] + [r for name in route.config.fallbacks if (r := self.router.get(name)) is not None]
        return [target for candidate in chain for target in candidate.targets]

    def check_native_only(self, body: MessagesRequest) -> None:
        """A 400 naming the first parameter only native targets take, when a target of the route is not one."""
        needed = native_only(body)
        if not needed:
            return
        for target in self.targets(body.model):
            if not takes_messages(target):
                raise APIError(
                    400,
                    f"`{needed[0]}` is served only by targets that take Anthropic's Messages API as sent "
                    f"(provider anthropic); the model {body.model!r} may be served by {target.id!r} "
                    f"(provider {target.config.provider}): remove `{needed[0]}` or use a route whose "
                    "targets are all Anthropic models",
                    param=needed[0],
                    code="unsupported_parameter",
                )

    async def create(self, request: Request) -> Response:
        principal = await caller(self.inference, request)
        raw = await request.body()
        body = parse_request(raw)
        self.check_native_only(body)
        chat = to_chat(body)
        ingress = Ingress("messages", orjson.loads(raw))
        exchange = NativeExchange.of(ingress, chat)
        attach(chat, exchange)
        message_id = new_id()

        async def answer(ctx: RequestContext, result: Result) -> Response:
            if isinstance(result, Completed):
                if exchange.answer is not None:
                    payload: dict[str, Any] = {**exchange.answer, "model": body.model}
                else:
                    assert isinstance(result.response, ChatCompletionResponse)
                    payload = wire_dict(to_message(result.response, body, message_id))
                return Response(
                    orjson.dumps(payload),
                    media_type="application/json",
                    headers=result.headers,
                    background=BackgroundTask(run_after_response, ctx),
                )
            assert isinstance(result, Streamed)
            # The first chunk before answering: a failure before any token keeps its status code.
            first = await anext(result.chunks, None)
            translator = MessageEvents(message_id, body)
            return StreamingResponse(
                self.events(translator, exchange, first, result.chunks),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", **result.headers},
                background=BackgroundTask(run_after_response, ctx),
            )

        return await run_translated(self.inference, request, chat, ingress, answer, error_response, principal=principal)

    async def events(
        self,
        translator: MessageEvents,
        exchange: NativeExchange,
        first: BaseModel | None,
        rest: AsyncIterator[BaseModel],
    ) -> AsyncIterator[bytes]:
        """The message's SSE events: a native upstream's as it sent them, else ``translator``'s."""

        async def chunks() -> AsyncIterator[BaseModel]:
            if first is not None:
                yield first
            async for chunk in rest:
                yield chunk

        try:
            if exchange.events or exchange.relayed:
                async for data in self.native_events(exchange, chunks(), translator.body.model):
                    yield data
                return
            async for name, event in translator.events(chunks()):
                yield sse(name, event)
        finally:
            # Close the chat stream now (its clean-up writes the trace), even when the client left.
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    @staticmethod
    async def native_events(
        exchange: NativeExchange, chunks: AsyncIterator[BaseModel], model: str
    ) -> AsyncIterator[bytes]:
        """Relay a native upstream's events as it sent them, in step with the chat chunks the pipeline sees."""
        last = ""
        stopped = False

        def relay() -> list[bytes]:
            nonlocal last, stopped
            out = []
            for name, event in exchange.drain():
                if name == "message_start" and isinstance(event.get("message"), dict):
                    event = {**event, "message": {**event["message"], "model": model}}
                last = name
                stopped = stopped or name == "message_stop"
                out.append(sse(name, event))
            return out

        try:
            for data in relay():
                yield data
            async for _ in chunks:
                for data in relay():
                    yield data
        except Exception as exc:
            for data in relay():
                yield data
            if last != "error":
                yield sse("error", error_event(exc))
            return
        for data in relay():
            yield data
        if not stopped and last != "error":
            cut = APIError(502, "the model's upstream stream was cut and cannot be continued as sent", type="api_error")
            yield sse("error", error_event(cut))

    async def count_tokens(self, request: Request) -> Response:
        principal = await caller(self.inference, request)
        counted = await self.counter.count(principal, await request.body())
        return Response(orjson.dumps({"input_tokens": counted}), media_type="application/json")
