"""``unmask`` (phase ``edge``): the originals of the request's masked values put back in the answer.

Outside the trace on purpose: the trace keeps the answer as the upstream gave it (with
placeholders), only the client sees the originals. A stream's placeholders may be split
across chunks; :class:`~lmdeck.guardrails.masking.StreamRestorer` holds back only what could
still become one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from lmdeck.guardrails.masking import MASKS, MaskSession, StreamRestorer
from lmdeck.guardrails.texts import rewrite_answer
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed


class RestoreMasked:
    """Restores placeholders in the answer of a request whose input was masked; a pass-through otherwise."""

    name = "unmask"

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        result = await call_next(ctx)
        session = ctx.slots.get(MASKS)
        if not session:
            return result
        if isinstance(result, Completed):
            return Completed(rewrite_answer(result.response, lambda _i, t: session.restore(t)), result.headers)
        return Streamed(_restored(session, result.chunks), result.headers)


def _restore_choice(choice: dict[str, Any], restorers: dict[int, StreamRestorer], session: MaskSession) -> Any:
    index = int(choice.get("index") or 0)
    restorer = restorers.setdefault(index, session.restorer())
    out = dict(choice)
    key = "text" if "text" in out and "delta" not in out else None
    delta = out.get("delta")
    piece = out.get("text") if key else (delta.get("content") if isinstance(delta, dict) else None)
    text = restorer.feed(piece) if isinstance(piece, str) else ""
    if out.get("finish_reason"):
        text += restorer.flush()
    if not isinstance(piece, str) and not text:
        return out
    if key:
        out["text"] = text
    else:
        out["delta"] = {**(delta if isinstance(delta, dict) else {}), "content": text}
    return out


async def _restored(session: MaskSession, chunks: AsyncIterator[BaseModel]) -> AsyncIterator[BaseModel]:
    restorers: dict[int, StreamRestorer] = {}
    last: BaseModel | None = None
    try:
        async for chunk in chunks:
            choices = getattr(chunk, "choices", None) or []
            if choices:
                restored = [_restore_choice(c, restorers, session) if isinstance(c, dict) else c for c in choices]
                chunk = chunk.model_copy(update={"choices": restored})
                last = chunk
            yield chunk
        # A stream that ended without a finish reason: what was held back is sent as it is.
        held = {i: r.flush() for i, r in restorers.items()}
        if last is not None and any(held.values()):
            tail = [{"index": i, "delta": {"content": t}, "finish_reason": None} for i, t in held.items() if t]
            yield last.model_copy(update={"choices": tail, "usage": None})
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
