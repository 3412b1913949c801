"""Streamed usage: always asked of the upstream, shown to the client only when it asked.

Providers request ``stream_options.include_usage`` upstream so that every step (tracing,
cost, budgets) sees the token counts in the final, usage-only chunk. This step sits first
in the pipeline (phase ``edge``), outside all the others, and removes that chunk from the
stream a client receives unless the client asked for it itself::

    StepDeclaration(StreamUsageFilter(), "edge")   # in lmdeck.gateway.steps.core_steps
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result, Streamed


def client_wants_usage(body: Any) -> bool:
    options = getattr(body, "stream_options", None)
    if options is None and isinstance(getattr(body, "model_extra", None), dict):
        options = body.model_extra.get("stream_options")
    if isinstance(options, dict):
        return bool(options.get("include_usage"))
    return bool(getattr(options, "include_usage", False))


def is_usage_only(chunk: BaseModel) -> bool:
    return getattr(chunk, "usage", None) is not None and not getattr(chunk, "choices", None)


async def _without_usage_chunks(chunks: AsyncIterator[BaseModel]) -> AsyncIterator[BaseModel]:
    try:
        async for chunk in chunks:
            if not is_usage_only(chunk):
                yield chunk
    finally:
        # Close the inner stream now (not at garbage collection) so the steps inside see the end.
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class StreamUsageFilter:
    """Drops the usage-only chunk of a stream whose client did not set ``include_usage``."""

    name = "stream_usage"

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        result = await call_next(ctx)
        if isinstance(result, Streamed) and not client_wants_usage(ctx.body):
            return Streamed(_without_usage_chunks(result.chunks), result.headers)
        return result
