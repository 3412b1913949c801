"""The record step: one trace per request, written to the durable sink before the response ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

import anyio
from pydantic import BaseModel

from lmdeck.gateway.disconnect import CLIENT_CLOSED_REQUEST
from lmdeck.gateway.errors import upstream_to_api_error
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.protocol import APIError
from lmdeck.protocol.traces import TraceRecord
from lmdeck.providers.base import UpstreamError
from lmdeck.tracing.request_spans import note_answer, note_request


class TraceSink(Protocol):
    """Where finished traces go.

    ``submit`` enqueues the record at once (so a cancelled request still has it
    written) and returns a future that resolves once the record is durable.
    """

    def submit(self, record: TraceRecord) -> asyncio.Future[None]: ...


@runtime_checkable
class QueuedTraceSink(TraceSink, Protocol):
    """A sink that holds records before they are stored; ``depth`` is how many (the spool-depth gauge)."""

    @property
    def depth(self) -> int: ...


class TraceObserver(Protocol):
    """Told about every finished trace (metrics, spans); must not block."""

    def observe(self, record: TraceRecord) -> None: ...


async def _close(chunks: AsyncIterator[BaseModel]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _usage_into(trace: TraceRecord, response: BaseModel) -> None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return
    trace.input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    trace.output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    details = getattr(usage, "prompt_tokens_details", None)
    if isinstance(details, dict):
        trace.cached_tokens = int(details.get("cached_tokens") or 0)
    # Prompt tokens written to a cache (Anthropic's prompt caching), kept beside OpenAI's usage shape.
    trace.cache_write_tokens = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)


def _stream_text(chunk: BaseModel) -> str:
    parts = []
    for choice in getattr(chunk, "choices", None) or []:
        if isinstance(choice, dict):
            delta = choice.get("delta") or {}
            parts.append(str(delta.get("content") or "") if isinstance(delta, dict) else "")
            parts.append(str(choice.get("text") or ""))
    return "".join(parts)


class RecordStep:
    """Fills in the trace from the result (or the failure) and writes it exactly once."""

    name = "record"

    def __init__(self, sink: TraceSink, observers: list[TraceObserver], redact: str = "none") -> None:
        self.sink = sink
        self.observers = observers
        self.redact = redact

    def _request_body(self, ctx: RequestContext) -> Any:
        if self.redact in ("bodies", "all"):
            return None
        return ctx.body.model_dump(exclude_none=True)

    async def _finish(self, ctx: RequestContext) -> None:
        trace = ctx.trace
        # Taken at the end: steps after this one may have rewritten the body (a rendered prompt).
        trace.request_body = self._request_body(ctx)
        note_request(ctx.body)
        trace.latency_ms = ctx.elapsed_ms()
        if ctx.first_token_at is not None:
            trace.ttft_ms = (ctx.first_token_at - ctx.started) * 1000.0
        if self.redact != "none":
            trace.response_body = None
        for observer in self.observers:
            observer.observe(trace)
        durable = self.sink.submit(trace)
        await durable

    def _fail(self, ctx: RequestContext, exc: Exception) -> None:
        if isinstance(exc, UpstreamError):
            exc = upstream_to_api_error(exc)
        if isinstance(exc, APIError):
            ctx.trace.status_code = exc.status
            ctx.trace.error = exc.message
            ctx.trace.error_type = exc.code or exc.type
        else:
            ctx.trace.status_code = 500
            ctx.trace.error = f"{type(exc).__name__}: {exc}"
            ctx.trace.error_type = "internal"

    @staticmethod
    def _abandoned(ctx: RequestContext, why: str) -> None:
        ctx.trace.status_code = CLIENT_CLOSED_REQUEST
        ctx.trace.error = why
        ctx.trace.error_type = "client_disconnected"

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        try:
            result = await call_next(ctx)
        except Exception as exc:
            self._fail(ctx, exc)
            await self._finish(ctx)
            raise
        except asyncio.CancelledError:
            # Cancelled before the answer was ready: its client went away (see gateway.disconnect).
            with anyio.CancelScope(shield=True):
                self._abandoned(ctx, "client disconnected before the answer was ready")
                await self._finish(ctx)
            raise
        if isinstance(result, Completed):
            _usage_into(ctx.trace, result.response)
            note_answer(result.response)
            if self.redact == "none":
                ctx.trace.response_body = result.response.model_dump(exclude_none=True)
            await self._finish(ctx)
            return result
        assert isinstance(result, Streamed)
        return Streamed(self._recorded_stream(ctx, result.chunks), result.headers)

    async def _recorded_stream(self, ctx: RequestContext, chunks: AsyncIterator[BaseModel]) -> AsyncIterator[BaseModel]:
        text: list[str] = []
        finished = False
        try:
            async for chunk in chunks:
                if ctx.first_token_at is None:
                    ctx.first_token_at = time.perf_counter()
                if getattr(chunk, "usage", None) is not None:
                    _usage_into(ctx.trace, chunk)
                note_answer(chunk)
                text.append(_stream_text(chunk))
                yield chunk
            finished = True
        except Exception as exc:
            self._fail(ctx, exc)
            raise
        finally:
            # A disconnect cancels this task; the shield lets the steps inside settle (cost, limits,
            # engine slots) and the trace reach the spool all the same.
            with anyio.CancelScope(shield=True):
                await _close(chunks)
                if not finished and ctx.trace.error is None:
                    self._abandoned(ctx, "client disconnected before the stream ended")
                if self.redact == "none":
                    ctx.trace.response_body = {"content": "".join(text)}
                await self._finish(ctx)
