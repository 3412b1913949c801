"""The ``shadow`` pipeline step: picks the requests a release mirrors and hands them over after the answer.

It runs in phase ``trace``, just inside ``record``, so it sees each request as the client sent it
(before prompts are rendered or variants applied) and the answer as the client gets it. For a chat
request covered by a release in shadow and sampled (the request id hashed with the release name,
below ``sample``), it keeps the request and collects the answer's text (a stream's chunks are passed
on untouched, as they come), then registers an ``after_response`` hook: the gateway runs it once the
whole response has been sent, and the hook only queues the mirror (:meth:`ShadowMirror.offer`, which
never waits). So the user's answer is neither changed nor delayed: the candidate call starts after it
has gone out. A request that failed, was cut short or abandoned is not mirrored; nor is lmdeck's own
traffic (evaluation, judges, the shadow's candidate calls).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from lmdeck.delivery.shadow.dispatch import ShadowTarget
from lmdeck.delivery.shadow.mirror import MirrorJob, ShadowMirror
from lmdeck.evaluation.experiments.assignment import unit_point
from lmdeck.evaluation.inference import is_eval_trace, reply_text
from lmdeck.evaluation.text import as_text
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed


def request_text(body: dict[str, Any]) -> str:
    """What the judge is shown as the request: the messages as ``role: text`` lines (or the prompt reference)."""
    lines = []
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            lines.append(f"{message.get('role', 'user')}: {as_text(message.get('content'))}")
    if not lines and body.get("prompt") is not None:
        lines.append(as_text(body["prompt"]))
    return "\n".join(lines)


def _delta_text(chunk: BaseModel) -> str:
    parts = []
    for choice in getattr(chunk, "choices", None) or []:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            delta = choice.get("delta") or {}
            if isinstance(delta, dict):
                parts.append(str(delta.get("content") or ""))
    return "".join(parts)


class _Answer:
    """The text of the user's answer, and whether it arrived whole."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.complete = False


class ShadowStep:
    """Queues a mirror of each sampled request covered by a release in shadow, after its answer (module docs)."""

    name = "shadow"

    def __init__(self, mirror: ShadowMirror) -> None:
        self.mirror = mirror

    def sampled(self, target: ShadowTarget, ctx: RequestContext) -> bool:
        return unit_point(target.release, ctx.request_id or ctx.trace.id) < target.spec.sample

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        if ctx.kind != "chat" or is_eval_trace(ctx.trace):
            return await call_next(ctx)
        target = self.mirror.covering(ctx.route_name, ctx.body)
        if target is None or not self.sampled(target, ctx):
            return await call_next(ctx)
        body = ctx.body.model_dump(exclude_none=True)  # as sent: later steps rewrite ctx.body
        answer = _Answer()
        ctx.after_response.append(lambda: self._offer(ctx, target, body, answer))
        result = await call_next(ctx)
        if isinstance(result, Completed):
            answer.parts.append(reply_text(result.response))
            answer.complete = True
            return result
        assert isinstance(result, Streamed)
        return Streamed(self._collected(result.chunks, answer), result.headers)

    @staticmethod
    async def _collected(chunks: AsyncIterator[BaseModel], answer: _Answer) -> AsyncIterator[BaseModel]:
        async for chunk in chunks:
            answer.parts.append(_delta_text(chunk))
            yield chunk
        answer.complete = True

    def _offer(self, ctx: RequestContext, target: ShadowTarget, body: dict[str, Any], answer: _Answer) -> None:
        trace = ctx.trace
        if not answer.complete or trace.error is not None or trace.status_code >= 400:
            return
        self.mirror.offer(
            MirrorJob(
                target=target,
                body=body,
                request_text=request_text(body),
                baseline="".join(answer.parts),
                baseline_trace_id=trace.id,
                baseline_cost_micros=trace.cost_micros,
                principal=ctx.principal,
            )
        )
