"""Inference serving: parse a request, run it through the pipeline, answer in JSON or SSE."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lmdeck.gateway.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected, cancel_on_disconnect
from lmdeck.gateway.errors import api_error_response, upstream_to_api_error
from lmdeck.gateway.sse import sse_stream
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.context import Completed, Kind, RequestContext, Streamed
from lmdeck.pipeline.identity import Authenticator, bearer_token, principal_for
from lmdeck.pipeline.principal import PRINCIPAL_STATE
from lmdeck.pipeline.request_ids import RequestIds
from lmdeck.protocol import APIError, ChatCompletionRequest, CompletionRequest, EmbeddingRequest, error_body
from lmdeck.protocol.errors import validation_param
from lmdeck.protocol.limits import check_json
from lmdeck.protocol.sessions import session_id_of
from lmdeck.protocol.traces import TraceRecord
from lmdeck.protocol.wire import wire_dict
from lmdeck.providers.base import UpstreamError

log = logging.getLogger(__name__)

SCHEMAS: dict[Kind, type[BaseModel]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
}


def parse_body(raw: bytes, schema: type[BaseModel]) -> Any:
    """Validate a JSON body, raising a 400 that names the offending field.

    What no field may hold (integers past 64 bits, nesting past
    :data:`~lmdeck.protocol.limits.MAX_JSON_DEPTH`) is refused first, in unknown fields too.
    """
    if not raw.strip():
        raise APIError(400, "the request body is empty: send a JSON object", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    check_json(data)
    try:
        # Strict: a wrong type is refused (``"5"`` for an integer, ``"yes"`` or ``1`` for a
        # boolean, ``true`` for a token count), as OpenAI's API does, never coerced.
        return schema.model_validate(data, strict=True)
    except ValidationError as exc:
        param, message = validation_param(exc.errors())
        raise APIError(400, f"{param}: {message}", param=param, code="invalid_value") from None


def stream_error_body(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, UpstreamError):
        exc = upstream_to_api_error(exc)
    if isinstance(exc, APIError):
        return exc.body()
    log.exception("stream failed", exc_info=exc)
    return error_body("the stream failed: internal error", "api_error")


async def run_after_response(ctx: RequestContext) -> None:
    """Run ``ctx.after_response`` on the event loop, once Starlette has sent the response's last byte."""
    for hook in ctx.after_response:
        try:
            hook()
        except Exception:
            log.exception("an after-response hook of request %s failed", ctx.request_id)


class InferenceServing:
    """Serves ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``."""

    def __init__(self, pipeline: Pipeline, authenticator: Authenticator) -> None:
        self.pipeline = pipeline
        self.authenticator = authenticator

    def context(self, request: Request, kind: Kind, body: Any, token: str | None = None) -> RequestContext:
        """The pipeline's context for ``body``; ``token``: the caller's key, when already read from the headers."""
        ids = RequestIds.of(request.scope) or RequestIds(request_id="", trace_id=TraceRecord().trace_id, span_id="")
        trace = TraceRecord(
            trace_id=ids.trace_id,
            request_id=ids.request_id,
            span_id=ids.span_id,
            parent_span_id=ids.parent_span_id,
            client_request_id=ids.client_request_id,
            client_trace_id=ids.client_trace_id,
            session_id=session_id_of(request.headers, getattr(body, "metadata", None)),
            kind=kind,
            stream=bool(getattr(body, "stream", False)),
            user=getattr(body, "user", None),
        )
        return RequestContext(
            kind=kind,
            body=body,
            request_id=trace.request_id,
            trace=trace,
            headers=request.headers,
            route_name=body.model,
            client_token=token if token is not None else bearer_token(request),
        )

    async def handle(self, request: Request, kind: Kind) -> Response:
        token = bearer_token(request)  # read once: it authenticates and travels with the context
        principal = await principal_for(self.authenticator, token)
        # Read by lmdeck.app.middleware.refused: a refusal from here on names the key and its team.
        setattr(request.state, PRINCIPAL_STATE, principal)
        body = parse_body(await request.body(), SCHEMAS[kind])
        ctx = self.context(request, kind, body, token)
        ctx.principal = principal
        try:
            # The body is read: from here a disconnect is the only thing the client can tell us.
            return await cancel_on_disconnect(request.receive, self.answer(ctx))
        except ClientDisconnected:
            return Response(status_code=CLIENT_CLOSED_REQUEST)

    async def answer(self, ctx: RequestContext) -> Response:
        """Run the pipeline; a whole answer as JSON, a stream as SSE once its first chunk is in."""
        try:
            result = await self.pipeline.run(ctx)
            if isinstance(result, Completed):
                return Response(
                    orjson.dumps(wire_dict(result.response)),
                    media_type="application/json",
                    headers=result.headers,
                    background=BackgroundTask(run_after_response, ctx),
                )
            assert isinstance(result, Streamed)
            # Pull the first chunk before answering so that a failure before any token
            # still gets its proper status code.
            first = await anext(result.chunks, None)
        except UpstreamError as exc:
            return api_error_response(upstream_to_api_error(exc))
        return StreamingResponse(
            sse_stream(first, result.chunks, stream_error_body),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", **result.headers},
            background=BackgroundTask(run_after_response, ctx),
        )
