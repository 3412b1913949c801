"""The terminal step of the pipeline: send the request to a target, with retries, breakers and fallbacks.

For one request the dispatcher walks the requested route, then each route of its
``fallbacks`` in order, skipping the routes the caller's key may not use and the targets that
cannot honour the request's parameters (see :mod:`lmdeck.gateway.routing.eligibility`); a request
no target may serve is refused with the requested route's reason (403 or 400 naming the
parameter), unless a target that was tried failed, whose failure is then the answer.
Within a route it tries the eligible targets in the strategy's order,
skipping those whose breaker is open, retrying retryable failures (up to the largest
``max_retries`` among its targets) after a backoff (see :mod:`lmdeck.gateway.routing.retry`).

Each attempt has a deadline: the target's ``timeout`` for a whole answer, and for a
stream its ``ttft_timeout`` (or ``timeout``) until the first chunk. A stream is handed on
only at its commit point (the route's ``stream_commit``: a few content chunks, or a short
hold after the first chunk; see :mod:`lmdeck.gateway.routing.stream_commit`), so a stream
that fails before it is retried like any call, unseen by the client. A failure after it is
resumed on a target that can continue the answer (see
:mod:`lmdeck.gateway.routing.stream_resume`), walking the same routes again (the failed target only
when no other can), up to as many times as the route allows attempts; when no target can, the
stream ends with an error event.

The trace records the target that answered, ``retries``, ``fallback_used``,
``upstream_ms`` (from the first attempt to the end of the answer), in
``metadata["upstream_errors"]`` every failed attempt, and in ``metadata["stream_resumed"]``
every resumption: the target that failed, the one that went on, and the offset (content
pieces and characters already sent) at which it did.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from lmdeck.gateway.routing.breaker import Permit
from lmdeck.gateway.routing.eligibility import eligible_targets
from lmdeck.gateway.routing.override import ROUTE_OVERRIDE
from lmdeck.gateway.routing.replay import replay_chat
from lmdeck.gateway.routing.retry import falls_back, no_verdict, retryable, trips_breaker
from lmdeck.gateway.routing.router import Router
from lmdeck.gateway.routing.state import RouteState, TargetState
from lmdeck.gateway.routing.stream_commit import ChunkReader, ChunkTimeout, HeldStream, hold_until_commit
from lmdeck.gateway.routing.stream_resume import StreamTranscript
from lmdeck.gateway.routing.tiers import TieredStrategy, as_tiered
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.protocol import APIError, ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.protocol.chat import ChatCompletionResponse
from lmdeck.providers.base import ContinuingProvider, UpstreamError, UpstreamTimeout, continues_answers
from lmdeck.tracing.request_spans import UpstreamAttempt, current_request


class RouteExhausted(Exception):
    """Every attempt a route allowed has failed; the next fallback route may serve."""

    def __init__(self, error: UpstreamError | APIError) -> None:
        super().__init__(str(error))
        self.error = error


def open_stream(target: TargetState, body: Any) -> AsyncIterator[BaseModel]:
    provider = target.provider
    if isinstance(body, ChatCompletionRequest):
        return provider.stream_chat(body)
    if isinstance(body, CompletionRequest):
        return provider.stream_completions(body)
    raise TypeError(f"{type(body).__name__} cannot be streamed")


async def call_once(target: TargetState, body: Any) -> BaseModel:
    provider = target.provider
    if isinstance(body, ChatCompletionRequest):
        return await provider.chat(body)
    if isinstance(body, CompletionRequest):
        return await provider.completions(body)
    if isinstance(body, EmbeddingRequest):
        return await provider.embeddings(body)
    raise TypeError(f"unknown request body {type(body).__name__}")


async def call_target(ctx: RequestContext, target: TargetState) -> Result:
    """One plain call to one target: no retries, no breaker, no deadline beyond the provider's own."""
    if ctx.stream:
        return Streamed(open_stream(target, ctx.body))
    return Completed(await call_once(target, ctx.body))


@dataclass(frozen=True)
class StreamOpener:
    """How an attempt opens its stream: the request as it is, or as the continuation of a partial answer."""

    body: Any
    continuation: bool = False

    def accepts(self, target: TargetState) -> bool:
        return not self.continuation or continues_answers(target.provider)

    def open(self, target: TargetState) -> AsyncIterator[BaseModel]:
        if self.continuation:
            assert isinstance(target.provider, ContinuingProvider)
            return target.provider.stream_continuation(self.body)
        return open_stream(target, self.body)


@dataclass
class Segment:
    """An upstream stream past its commit point, holding its target's in-flight count and breaker permit."""

    target: TargetState
    permit: Permit
    reader: ChunkReader[BaseModel]
    held: HeldStream[BaseModel]
    ended: bool = False
    attempt: UpstreamAttempt | None = None


class Dispatcher:
    """Sends a request to its route's targets; the last handler of the pipeline.

    >>> pipeline = Pipeline(steps, terminal=Dispatcher(router))  # doctest: +SKIP
    """

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, ctx: RequestContext) -> Result:
        route = ctx.slots.get(ROUTE_OVERRIDE) or self.router.get(ctx.route_name)
        if route is None:
            raise APIError(404, f"the model {ctx.route_name!r} does not exist", code="model_not_found", param="model")
        ctx.trace.route = ctx.route_name
        started = time.perf_counter()
        opener = StreamOpener(ctx.body) if ctx.stream else None
        answer = await self._serve(ctx, route, started, opener)
        if isinstance(answer, Segment):
            return Streamed(self._relay(ctx, route, answer, started))
        if ctx.stream and isinstance(answer, ChatCompletionResponse):
            # A tiered strategy kept an answer it had to judge whole before the client saw it.
            return Streamed(replay_chat(answer))
        return Completed(answer)

    async def _serve(
        self,
        ctx: RequestContext,
        route: RouteState,
        started: float,
        opener: StreamOpener | None,
        allow: Callable[[TargetState], bool] | None = None,
    ) -> BaseModel | Segment:
        """An answer (a stream past its commit point) from ``route`` or, failing that, its fallbacks.

        Only targets that ``allow`` (and, for a stream, its ``opener``) accepts are tried.
        """
        chain = [route] + [r for name in route.config.fallbacks if (r := self.router.get(name)) is not None]
        last: UpstreamError | APIError | None = None
        refused: APIError | None = None
        for position, candidate in enumerate(chain):
            targets, refusal = eligible_targets(ctx, candidate, self.router.order(candidate))
            if refusal is not None:
                if position == 0 and refusal.status == 403:
                    raise refusal
                refused = refused or refusal
                continue
            try:
                answer = await self._route(ctx, candidate, targets, started, opener, allow)
            except RouteExhausted as exhausted:
                # An upstream failure outranks "circuit open" as the reason given to the client.
                if last is None or isinstance(exhausted.error, UpstreamError):
                    last = exhausted.error
                continue
            if position > 0:
                ctx.trace.fallback_used = True
                ctx.trace.metadata["served_by_route"] = candidate.name
            return answer
        ctx.trace.upstream_ms = (time.perf_counter() - started) * 1000.0
        # A failure of a target that was tried outranks the refusal of targets that were not.
        error = last or refused
        assert error is not None
        raise error

    async def _route(
        self,
        ctx: RequestContext,
        route: RouteState,
        targets: list[TargetState],
        started: float,
        opener: StreamOpener | None,
        allow: Callable[[TargetState], bool] | None,
        body: Any = None,
    ) -> BaseModel | Segment:
        """An answer from ``targets`` of ``route``, with retries; ``body`` (default: the request's) is what is sent.

        A route with a tiered strategy is served by the strategy (unless ``body`` is given: a tier's own call).
        """
        if opener is not None:
            targets = [t for t in targets if opener.accepts(t)]
        if allow is not None:
            targets = [t for t in targets if allow(t)]
        strategy = as_tiered(route.strategy)
        if strategy is not None and body is None and allow is None:
            return await self._tiered(ctx, route, strategy, targets, started)
        allowed = attempts_allowed(targets)
        attempts = 0
        position = 0
        last: UpstreamError | None = None
        previous: TargetState | None = None
        while attempts < allowed:
            picked = await self._pick(targets, position)
            if picked is None:
                break
            target, permit = picked
            if attempts > 0:
                retry_after = last.retry_after if last is not None else None
                delay = self.router.retry.delay(attempts - 1, self.router.rng, retry_after, target is previous)
                try:
                    await asyncio.sleep(delay)
                except BaseException:
                    await self.router.breakers.release(permit)
                    raise
            ctx.upstream_attempts += 1
            ctx.trace.retries = ctx.upstream_attempts - 1
            self._stamp(ctx, target)
            try:
                return await self._attempt(ctx, route, target, permit, started, opener, body)
            except UpstreamError as exc:
                self._note_failure(ctx, target, exc)
                if not retryable(exc):
                    if falls_back(exc):
                        raise RouteExhausted(exc) from exc
                    raise
                last, previous = exc, target
                attempts += 1
                position = targets.index(target) + 1
        if last is not None:
            raise RouteExhausted(last)
        raise RouteExhausted(await self._circuit_open(route))

    async def _tiered(
        self,
        ctx: RequestContext,
        route: RouteState,
        strategy: TieredStrategy,
        targets: list[TargetState],
        started: float,
    ) -> BaseModel | Segment:
        """The answer of the tier ``strategy`` keeps; each tier is one target with its retries and breaker."""
        if ctx.stream:
            if not isinstance(ctx.body, ChatCompletionRequest):
                raise APIError(
                    400,
                    f"the model {route.name!r} ({strategy.name} routing) streams chat completions only: "
                    "call /v1/completions without `stream`",
                    param="stream",
                    code="unsupported_parameter",
                )
            if strategy.stream_mode(route) == "refuse":
                raise APIError(
                    400,
                    f"the model {route.name!r} ({strategy.name} routing) answers whole responses only: "
                    "send the request without `stream`",
                    param="stream",
                    code="unsupported_parameter",
                )

        async def call(target: TargetState, body: Any) -> BaseModel | Segment:
            opener = StreamOpener(body) if getattr(body, "stream", False) else None
            try:
                return await self._route(ctx, route, [target], started, opener, None, body)
            except RouteExhausted as exhausted:
                raise exhausted.error from None

        answer: BaseModel | Segment = await strategy.serve(ctx, route, targets, call)
        return answer

    async def _pick(self, targets: list[TargetState], start: int) -> tuple[TargetState, Permit] | None:
        """The first target from ``start`` on (wrapping round) whose breaker lets a request through."""
        for i in range(len(targets)):
            target = targets[(start + i) % len(targets)]
            permit = await self.router.breakers.acquire(target.id)
            if permit is not None:
                return target, permit
        return None

    async def _circuit_open(self, route: RouteState) -> APIError:
        wait = min([await self.router.breakers.retry_in(t.id) for t in route.targets] or [1.0])
        seconds = max(1, math.ceil(wait))
        return APIError(
            503,
            f"every target of {route.name!r} is failing and has been taken out of rotation (circuit open); "
            f"retry in {seconds}s",
            type="service_unavailable",
            code="circuit_open",
            headers={"retry-after": str(seconds)},
        )

    @staticmethod
    def _stamp(ctx: RequestContext, target: TargetState) -> None:
        ctx.trace.target = target.id
        ctx.trace.provider = target.config.provider
        ctx.trace.upstream_model = target.config.model

    @staticmethod
    def _note_failure(ctx: RequestContext, target: TargetState, exc: UpstreamError) -> None:
        errors = ctx.trace.metadata.setdefault("upstream_errors", [])
        errors.append({"target": target.id, "status": exc.status, "kind": exc.kind, "error": exc.message})

    async def _settle(self, permit: Permit, exc: UpstreamError | None) -> None:
        if exc is None:
            await self.router.breakers.success(permit)
        elif no_verdict(exc):
            await self.router.breakers.release(permit)
        elif trips_breaker(exc):
            await self.router.breakers.failure(permit)
        else:
            # The upstream answered (a 4xx or a rate limit): it is alive.
            await self.router.breakers.success(permit)

    async def _attempt(
        self,
        ctx: RequestContext,
        route: RouteState,
        target: TargetState,
        permit: Permit,
        started: float,
        opener: StreamOpener | None,
        body: Any = None,
    ) -> BaseModel | Segment:
        config = target.config
        began = time.perf_counter()
        target.in_flight += 1
        reader: ChunkReader[BaseModel] | None = None
        span = attempt_span(target)
        attempt = span.__enter__()
        try:
            if opener is not None:
                reader = ChunkReader(opener.open(target))
                wait = config.ttft_timeout or config.timeout
                kind = "ttft_timeout" if config.ttft_timeout else "timeout"
                try:
                    held = await hold_until_commit(reader, route.config.stream_commit, wait)
                except ChunkTimeout:
                    raise UpstreamTimeout(
                        f"the upstream {target.id} sent no token within {wait:g}s (the target's `{kind}`)", kind=kind
                    ) from None
            else:
                try:
                    async with asyncio.timeout(config.timeout):
                        response = await call_once(target, ctx.body if body is None else body)
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"the upstream {target.id} did not answer within {config.timeout:g}s (the target's `timeout`)"
                    ) from None
        except UpstreamError as exc:
            end_attempt(attempt, exc)
            target.in_flight -= 1
            await self._settle(permit, exc)
            if reader is not None:
                await reader.aclose()
            raise
        except BaseException as exc:
            end_attempt(attempt, exc)
            target.in_flight -= 1
            await self.router.breakers.release(permit)
            if reader is not None:
                await reader.aclose()
            raise
        finally:
            span.__exit__(None, None, None)
        if reader is None:
            end_attempt(attempt, None)
            target.observe_latency((time.perf_counter() - began) * 1000.0)
            target.in_flight -= 1
            await self._settle(permit, None)
            ctx.trace.upstream_ms = (time.perf_counter() - started) * 1000.0
            return response
        target.observe_latency(((held.first_at or time.perf_counter()) - began) * 1000.0)
        return Segment(target, permit, reader, held, attempt=attempt)

    async def _end(self, segment: Segment, exc: UpstreamError | None, *, abandoned: bool = False) -> None:
        """Give back what ``segment`` holds: its in-flight count, its breaker permit (settled), its stream."""
        if segment.ended:
            return
        segment.ended = True
        end_attempt(segment.attempt, None if exc is None and not abandoned else exc or asyncio.CancelledError())
        segment.target.in_flight -= 1
        if abandoned:
            await self.router.breakers.release(segment.permit)
        else:
            await self._settle(segment.permit, exc)
        await segment.reader.aclose()

    async def _relay(
        self, ctx: RequestContext, route: RouteState, first: Segment, started: float
    ) -> AsyncIterator[BaseModel]:
        """The stream the client receives: ``first``'s chunks, then those of any resumptions."""
        transcript = StreamTranscript()
        if not isinstance(ctx.body, ChatCompletionRequest):
            transcript.refuse("a completions stream cannot be continued")
        resumptions_left = attempts_allowed(route.targets)
        segment: Segment | None = first
        continuing = False
        try:
            while segment is not None:
                current = segment
                try:
                    for chunk in current.held.chunks:
                        if (out := transcript.accept(chunk, continuing)) is not None:
                            yield out
                    while (received := await current.reader.next()) is not None:
                        if (out := transcript.accept(received, continuing)) is not None:
                            yield out
                    await self._end(current, None)
                    segment = None
                except UpstreamError as exc:
                    self._note_failure(ctx, current.target, exc)
                    await self._end(current, exc)
                    segment = None
                    if transcript.finished:
                        return  # every token had arrived: the client is missing nothing
                    if resumptions_left <= 0 or not falls_back(exc):
                        raise
                    resumptions_left -= 1
                    segment = await self._resume(ctx, route, transcript, current, started)
                    if segment is None:
                        raise exc from None
                    continuing = True
        finally:
            if segment is not None:
                await self._end(segment, None, abandoned=True)
            ctx.trace.upstream_ms = (time.perf_counter() - started) * 1000.0

    async def _resume(
        self, ctx: RequestContext, route: RouteState, transcript: StreamTranscript, failed: Segment, started: float
    ) -> Segment | None:
        """A stream that continues the answer where ``failed`` stopped, or None when no target can give one."""
        request = transcript.continuation(ctx.body)
        if request is None:
            return None
        opener = StreamOpener(request, continuation=bool(transcript.parts))
        # The target whose stream just failed goes on only when no other target, on any route, can.
        for allow in (lambda t: t is not failed.target, lambda t: t is failed.target):
            try:
                answer = await self._serve(ctx, route, started, opener, allow)
                break
            except (UpstreamError, APIError):
                continue
        else:
            return None
        assert isinstance(answer, Segment)
        transcript.cut()
        resumed = ctx.trace.metadata.setdefault("stream_resumed", [])
        resumed.append(
            {
                "from": failed.target.id,
                "to": answer.target.id,
                "offset": transcript.offset,
                "offset_chars": len(transcript.text),
                "continued": opener.continuation,
            }
        )
        return answer


def attempt_span(target: TargetState) -> AbstractContextManager[UpstreamAttempt | None]:
    """The span of one call to ``target`` (its id is the upstream's parent), when the request has spans."""
    spans = current_request()
    if spans is None:
        return nullcontext()
    return spans.attempt(target.id, target.config.provider, target.config.model)


def end_attempt(attempt: UpstreamAttempt | None, exc: BaseException | None) -> None:
    """End an attempt's span; a failed one gets ``error.type``: the upstream's HTTP status, else lmdeck's kind."""
    if attempt is None:
        return
    if exc is None:
        attempt.end()
    elif isinstance(exc, UpstreamError):
        answered = attempt.status_code is not None and attempt.status_code >= 400
        timed_out = isinstance(exc, UpstreamTimeout)
        attempt.fail(str(attempt.status_code) if answered and not timed_out else exc.kind)
    else:
        attempt.fail("cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__)


def attempts_allowed(targets: list[TargetState]) -> int:
    """Attempts a route allows one request: one, plus the largest ``max_retries`` among its targets."""
    return 1 + max((t.config.max_retries for t in targets), default=0)
