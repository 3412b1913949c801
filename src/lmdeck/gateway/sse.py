"""Server-sent events in OpenAI's streaming format."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import orjson
from pydantic import BaseModel

from lmdeck.protocol.wire import wire_dict

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def sse_event(payload: BaseModel | dict[str, Any]) -> bytes:
    data = wire_dict(payload) if isinstance(payload, BaseModel) else payload
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def sse_stream(
    first: BaseModel | None,
    rest: AsyncIterator[BaseModel],
    on_error: Callable[[Exception], dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The chunks as SSE events, ending with ``[DONE]``.

    A failure after the response has started cannot change its status, so it is
    sent as an ``{"error": ...}`` event, which OpenAI's SDKs raise as an error.
    """
    try:
        if first is not None:
            yield sse_event(first)
        async for chunk in rest:
            yield sse_event(chunk)
    except Exception as exc:
        yield sse_event(on_error(exc))
        return
    finally:
        # Close what this wraps now, not whenever it is garbage-collected: its clean-up
        # writes the trace and frees the upstream's resources.
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()
    yield DONE
