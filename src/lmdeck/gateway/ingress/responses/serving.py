"""``/v1/responses``: OpenAI's Responses API served through the chat pipeline.

    serving = ResponsesServing(inference_serving, ResponseStore(db, retention_s=30 * 86400))
    await serving.create(request)             # POST /v1/responses (JSON, or SSE when ``stream``)
    await serving.retrieve(principal, "resp_…") # GET /v1/responses/{id}; 404 for another team's
    await serving.delete(principal, "resp_…")   # DELETE /v1/responses/{id}

A request is translated into a chat request (:mod:`.request`), run through the same pipeline as
``/v1/chat/completions`` (:func:`lmdeck.gateway.ingress.runner.run_translated`), and its answer
translated back (:mod:`.response`, :mod:`.stream`). With ``store`` (the default) the response and the
conversation it ends are queued for the store once the answer is whole; nothing is written on the
request path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import orjson
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lmdeck.gateway.ingress.responses.request import parse_request, to_chat
from lmdeck.gateway.ingress.responses.response import history_of, new_id, shell, to_response
from lmdeck.gateway.ingress.responses.store import ResponseStore
from lmdeck.gateway.ingress.responses.stream import ResponseEvents
from lmdeck.gateway.ingress.runner import run_translated
from lmdeck.gateway.serving import InferenceServing, run_after_response, stream_error_body
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.pipeline.identity import bearer_token, principal_for
from lmdeck.pipeline.ingress import Ingress
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError, ChatCompletionResponse
from lmdeck.protocol.chat import ChatChoice
from lmdeck.protocol.responses import DeletedResponse, ResponseObject, StoredResponse
from lmdeck.protocol.wire import wire_dict
from lmdeck.providers.responses_native import NATIVE_FIELD, chat_choices

log = logging.getLogger(__name__)

#: Chat parameters a refusal may name, as the Responses request called them.
RESPONSES_NAMES = {
    "response_format": "text.format",
    "reasoning_effort": "reasoning",
    "max_completion_tokens": "max_output_tokens",
    "stream_options.include_usage": "stream",
    "messages": "input",
}


def in_responses_terms(exc: APIError) -> APIError:
    """``exc`` naming the Responses parameter where it named the chat one it was translated into."""
    param = exc.param or ""
    # A message's index counts the instructions and history too: name the input as a whole.
    name = RESPONSES_NAMES.get(param) or ("input" if param.startswith("messages.") else None)
    if name is None:
        return exc
    message = exc.message.replace(f"`{param}`", f"`{name}`")
    return APIError(exc.status, message, type=exc.type, param=name, code=exc.code, headers=exc.headers)


#: The stream events that end a response the store keeps.
TERMINAL_OK = frozenset({"response.completed", "response.incomplete"})


def native_response(chat: ChatCompletionResponse, response_id: str) -> ResponseObject | None:
    """The upstream's own ``response`` object when a target answered natively and no step changed what it
    said (an output guardrail's redaction does: then the redacted chat answer is translated instead)."""
    native = (chat.model_extra or {}).get(NATIVE_FIELD)
    if not isinstance(native, dict):
        return None

    def said(choices: list[Any]) -> list[dict[str, Any]]:
        return [ChatChoice.model_validate(c).model_dump(exclude_none=True) for c in choices]

    if said(chat_choices(native)) != said([c.model_dump() for c in chat.choices]):
        return None
    try:
        return ResponseObject.model_validate({**native, "id": response_id})
    except ValidationError:
        log.warning("a native Responses answer lmdeck cannot read was translated from its chat reading instead")
        return None


def not_found(response_id: str, param: str | None = None) -> APIError:
    return APIError(
        404,
        f"no stored response {response_id!r} for this key's team: it does not exist, has expired, was deleted, "
        "was made with `store: false`, or belongs to another team",
        param=param,
        code="response_not_found",
    )


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class ResponsesServing:
    """Serves ``/v1/responses`` (see the module docs)."""

    def __init__(self, inference: InferenceServing, store: ResponseStore) -> None:
        self.inference = inference
        self.store = store

    async def create(self, request: Request) -> Response:
        principal = await principal_for(self.inference.authenticator, bearer_token(request))
        raw = await request.body()
        body = parse_request(raw)
        history: list[dict[str, Any]] = []
        if body.previous_response_id is not None:
            previous = await self.store.get(
                body.previous_response_id, team_id=principal.team_id, key_id=principal.key_id
            )
            if previous is None:
                raise not_found(body.previous_response_id, "previous_response_id")
            history = previous.messages
        chat = to_chat(body, history)
        conversation = [wire_dict(m) for m in chat.messages[1 if body.instructions else 0 :]]
        response_id = new_id("resp")

        def keep(response: ResponseObject) -> None:
            if not body.store:
                return
            now = time.time()
            self.store.put(
                StoredResponse(
                    id=response.id,
                    team_id=principal.team_id,
                    key_id=principal.key_id,
                    created_at=now,
                    expires_at=self.store.expiry(now),
                    response=response,
                    messages=history_of(conversation, response),
                )
            )

        async def answer(ctx: RequestContext, result: Result) -> Response:
            if isinstance(result, Completed):
                assert isinstance(result.response, ChatCompletionResponse)
                response = native_response(result.response, response_id) or to_response(
                    result.response, body, response_id
                )
                keep(response)
                return Response(
                    orjson.dumps(wire_dict(response)),
                    media_type="application/json",
                    headers=result.headers,
                    background=BackgroundTask(run_after_response, ctx),
                )
            assert isinstance(result, Streamed)
            # The first chunk before answering: a failure before any token keeps its status code.
            first = await anext(result.chunks, None)
            translator = ResponseEvents(shell(body, response_id), on_error=lambda exc: stream_error_body(exc)["error"])
            return StreamingResponse(
                self.events(translator, first, result.chunks, keep),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", **result.headers},
                background=BackgroundTask(run_after_response, ctx),
            )

        ingress = Ingress("responses", orjson.loads(raw))
        if body.previous_response_id is None:
            # The upstream cannot know lmdeck's stored ids: a continued conversation is always translated.
            chat.keep_native(ingress.body, ingress)
        try:
            return await run_translated(self.inference, request, chat, ingress, answer, principal=principal)
        except APIError as exc:
            raise in_responses_terms(exc) from None

    async def events(
        self,
        translator: ResponseEvents,
        first: BaseModel | None,
        rest: AsyncIterator[BaseModel],
        keep: Callable[[ResponseObject], None],
    ) -> AsyncIterator[bytes]:
        """``translator``'s events as SSE (``event:`` and ``data:`` lines), keeping the finished response."""

        async def chunks() -> AsyncIterator[BaseModel]:
            if first is not None:
                yield first
            async for chunk in rest:
                yield chunk

        try:
            async for event in translator.events(chunks()):
                if event["type"] in TERMINAL_OK:
                    keep(translator.response)  # before the last event: a client gone after it changes nothing
                yield sse(event)
        finally:
            # Close the chat stream now (its clean-up writes the trace), even when the client left.
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def retrieve(self, principal: Principal, response_id: str) -> Response:
        stored = await self.store.get(response_id, team_id=principal.team_id, key_id=principal.key_id)
        if stored is None:
            raise not_found(response_id)
        return Response(orjson.dumps(wire_dict(stored.response)), media_type="application/json")

    async def delete(self, principal: Principal, response_id: str) -> Response:
        if not await self.store.delete(response_id, team_id=principal.team_id, key_id=principal.key_id):
            raise not_found(response_id)
        return Response(orjson.dumps(wire_dict(DeletedResponse(id=response_id))), media_type="application/json")
