"""Token usage of a response, and watching a stream to its end.

    used = usage_of(response)           # Usage counts, or None when the response has none
    chunks = observed(chunks, on_end)   # on_end(error) runs once the stream ends, fails or is dropped

Steps that act after the response (cost, budget settlement, token limits) see a
stream through :func:`observed`; it closes the stream it wraps when it is
itself closed, so an early disconnect reaches the upstream at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


@dataclass(frozen=True)
class Usage:
    """Tokens a request used; ``estimated`` when the upstream never said (a stream cut short)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def usage_of(response: Any) -> Usage | None:
    usage = _get(response, "usage")
    if usage is None:
        return None
    details = _get(usage, "prompt_tokens_details")
    cached = _get(details, "cached_tokens") if details is not None else None
    return Usage(
        input_tokens=int(_get(usage, "prompt_tokens") or 0),
        output_tokens=int(_get(usage, "completion_tokens") or 0),
        cached_tokens=int(cached or 0),
    )


def content_pieces(chunk: Any) -> int:
    """How many pieces of generated text a stream chunk carries (about one token each)."""
    count = 0
    for choice in _get(chunk, "choices") or []:
        delta = _get(choice, "delta")
        if (delta is not None and _get(delta, "content")) or _get(choice, "text"):
            count += 1
    return count


async def observed(
    chunks: AsyncIterator[T],
    on_end: Callable[[BaseException | None], Awaitable[None]],
    on_chunk: Callable[[T], None] | None = None,
) -> AsyncIterator[T]:
    """Yield ``chunks``; when they end (or fail, or the consumer stops) close them and await ``on_end``."""
    error: BaseException | None = None
    try:
        async for chunk in chunks:
            if on_chunk is not None:
                on_chunk(chunk)
            yield chunk
    except BaseException as exc:
        error = exc
        raise
    finally:
        with anyio.CancelScope(shield=True):
            try:
                closer = getattr(chunks, "aclose", None)
                if closer is not None:
                    await closer()
            finally:
                await on_end(error)
