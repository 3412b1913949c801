"""``guard_output`` (phase ``guard_output``): the answer checked before the client (or a cache) gets it.

A whole answer: each choice's text goes through the request's output guardrails; a ``block``
finding answers 422 ``content_policy_violation`` naming the guardrail, ``mask`` replaces the
spans found with ``[ENTITY]``, ``flag`` tags the trace.

A stream is checked as it passes, before each chunk is handed on: the guardrails see a
sliding window, the text of the choice so far up to the route's ``stream_window``
characters back (always the whole new piece), with ``GuardContext.final`` False. A
``block`` finding cuts the stream: the chunk is not sent and the client gets an error event
naming the guardrail. ``mask`` redacts the spans that fall in the new piece. When the stream
ends, the whole answer is checked once more with ``final`` True (a JSON-validity guardrail
judges only then). ``async`` guardrails check the whole answer once it is complete.

A request that came in through another protocol (``/v1/messages``, ``/v1/responses``) and has
output guardrails is never passed through natively (its ``Ingress.native_ok`` is cleared), so
every answer the client gets is one these checks saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from pydantic import BaseModel

from lmdeck.guardrails.base import GuardContext, Span
from lmdeck.guardrails.config import Attached, GuardPlan
from lmdeck.guardrails.masking import redact
from lmdeck.guardrails.resources import is_guardrail_call
from lmdeck.guardrails.service import Checked, GuardrailService, action_for, refuse_unchecked
from lmdeck.guardrails.steps.input import blocked_error
from lmdeck.guardrails.texts import answer_texts, chunk_texts, rewrite_answer, rewrite_chunk
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed


class GuardOutput:
    """Runs the output guardrails on an answer or a stream (see the module docstring)."""

    name = "guard_output"

    def __init__(self, service: GuardrailService) -> None:
        self.service = service

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        if is_guardrail_call(ctx, self.service.internal_token):
            return await call_next(ctx)
        plan = self.service.plan(ctx)
        if not plan.output:
            return await call_next(ctx)
        if ctx.ingress is not None:
            # An upstream's native answer would reach the client as it sent it, past these checks:
            # with output guardrails, the upstream gets the translated request and its answer is checked.
            ctx.ingress.native_ok = False
        result = await call_next(ctx)
        if isinstance(result, Streamed):
            return Streamed(self._guarded(ctx, plan, result.chunks), result.headers)
        redactions: dict[int, list[Span]] = {}
        for position, text in enumerate(answer_texts(result.response)):
            gctx = GuardContext("output", route=ctx.route_name)
            for item in await self.service.check(plan.output, text, gctx):
                action = action_for(item)
                self.service.record(ctx, item, action, "output", f"choices[{position}]")
                refuse_unchecked(item, stage="output")
                if action == "block":
                    raise blocked_error(item.attached.name, item.verdict.reason if item.verdict else "", "output")
                if action == "mask" and item.verdict is not None:
                    redactions.setdefault(position, []).extend(item.verdict.spans)
            self.service.spawn(plan.output, text, gctx, ctx.trace)
        if redactions:
            response = rewrite_answer(result.response, lambda i, t: redact(t, redactions[i]) if i in redactions else t)
            return Completed(response, result.headers)
        return result

    async def _guarded(
        self, ctx: RequestContext, plan: GuardPlan, chunks: AsyncIterator[BaseModel]
    ) -> AsyncIterator[BaseModel]:
        sync = [a for a in plan.output if a.use.mode == "sync"]
        texts: dict[int, str] = {}
        found: set[str] = set()  # a guardrail's finding goes on the trace once per stream, not once per chunk
        try:
            async for chunk in chunks:
                new = chunk_texts(chunk)
                if new and sync:
                    redactions: dict[int, list[Span]] = {}
                    for index, piece in new.items():
                        spans = await self._window(ctx, plan, sync, texts.get(index, ""), piece, found, index)
                        texts[index] = texts.get(index, "") + piece
                        if spans:
                            redactions[index] = spans
                    if redactions:
                        chunk = rewrite_chunk(chunk, _redactor(redactions))
                else:
                    for index, piece in new.items():
                        texts[index] = texts.get(index, "") + piece
                yield chunk
            for index, text in sorted(texts.items()):
                gctx = GuardContext("output", route=ctx.route_name, final=True)
                for item in await self.service.check(sync, text, gctx):
                    action = action_for(item)
                    if action == "pass" and item.attached.name in found:
                        continue
                    if action != "pass" and item.attached.name in found and action != "block":
                        continue
                    self.service.record(ctx, item, action, "output", f"choices[{index}]")
                    refuse_unchecked(item, stage="output")
                    if action == "block":
                        raise blocked_error(item.attached.name, item.verdict.reason if item.verdict else "", "output")
                self.service.spawn(plan.output, text, gctx, ctx.trace)
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _window(
        self,
        ctx: RequestContext,
        plan: GuardPlan,
        sync: list[Attached],
        before: str,
        piece: str,
        found: set[str],
        index: int,
    ) -> list[Span]:
        """Check the window ending with ``piece``; the spans of ``mask`` findings within ``piece``, or raise to cut."""
        full = before + piece
        start = max(0, min(len(before), len(full) - plan.stream_window))
        window = full[start:]
        gctx = GuardContext("output", route=ctx.route_name, final=False)
        redact_spans: list[Span] = []
        for item in await self.service.check(sync, window, gctx):
            action = action_for(item)
            if action == "pass":
                continue
            if action == "error":
                refuse_unchecked(item, stage="output")
            if item.attached.name not in found or action == "block":
                found.add(item.attached.name)
                self.service.record(ctx, item, action, "output", f"choices[{index}]")
            if action == "block":
                raise blocked_error(item.attached.name, item.verdict.reason if item.verdict else "", "output")
            if action == "mask" and item.verdict is not None:
                redact_spans.extend(_within_piece(item, start, len(before), len(full)))
        return redact_spans


def _redactor(redactions: dict[int, list[Span]]) -> Callable[[int, str], str]:
    return lambda i, t: redact(t, redactions[i]) if i in redactions else t


def _within_piece(item: Checked, window_start: int, piece_start: int, piece_end: int) -> list[Span]:
    """The finding's spans clipped to the new piece, in the piece's own positions."""
    out: list[Span] = []
    for span in item.verdict.spans if item.verdict is not None else ():
        start, end = max(span.start + window_start, piece_start), min(span.end + window_start, piece_end)
        if start < end:
            out.append(Span(start - piece_start, end - piece_start, span.entity, span.score))
    return out
