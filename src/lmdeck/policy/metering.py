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
    """Tokens a request used; ``estimated`` when the upstream never said (a stream cut short).

    ``input_tokens`` counts every prompt token; ``cached_tokens`` of them were cache reads,
    ``cache_write_tokens`` were written to a 5-minute cache and ``cache_write_1h_tokens`` to a
    1-hour cache (Anthropic's prompt caching).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _count(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def usage_of(response: Any) -> Usage | None:
    """The :class:`Usage` of an OpenAI-shaped response or chunk: ``prompt_tokens``, ``completion_tokens``,
    ``prompt_tokens_details.cached_tokens``, and the cache writes ``cache_creation_input_tokens`` (with
    its ``cache_creation.ephemeral_1h_input_tokens`` share) that Anthropic answers carry."""
    usage = _get(response, "usage")
    if usage is None:
        return None
    details = _get(usage, "prompt_tokens_details")
    written = _count(_get(usage, "cache_creation_input_tokens"))
    breakdown = _get(usage, "cache_creation")
    written_1h = min(_count(_get(breakdown, "ephemeral_1h_input_tokens")) if breakdown is not None else 0, written)
    return Usage(
        input_tokens=_count(_get(usage, "prompt_tokens")),
        output_tokens=_count(_get(usage, "completion_tokens")),
        cached_tokens=_count(_get(details, "cached_tokens")) if details is not None else 0,
        cache_write_tokens=written - written_1h,
        cache_write_1h_tokens=written_1h,
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
