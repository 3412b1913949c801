"""The stream commit point: hold a stream's first chunks back until its upstream has proven healthy.

Once a chunk reaches the client, a failure can no longer be hidden by a retry. So the
dispatcher reads a new stream's first chunks into a buffer and *commits* the stream (sends
the buffer and relays the rest) only after the route's ``stream_commit.chunks`` chunks that
carry generated content, or ``stream_commit.max_hold_ms`` after its first chunk, whichever
comes first, or when the stream ends. A failure before that point (an HTTP error, a reset, no
first chunk within the TTFT deadline, a dropped stream, an in-stream error event) is an
ordinary failed attempt: retried or sent to a fallback, unseen by the client::

    reader = ChunkReader(provider.stream_chat(request))
    held = await hold_until_commit(reader, route.config.stream_commit, first_wait=10.0)
    for chunk in held.chunks: ...         # send these, then the rest:
    while (chunk := await reader.next()) is not None: ...
    await reader.aclose()

Raises :class:`ChunkTimeout` when no first chunk comes within ``first_wait`` seconds, and
whatever the upstream stream raised. The hold costs time to first token: up to
``max_hold_ms``, less when ``chunks`` content chunks arrive sooner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from lmdeck.settings import StreamCommitConfig

T = TypeVar("T")

#: Delta fields that carry generated tokens (as opposed to the role or an empty string).
CONTENT_FIELDS = ("content", "tool_calls", "function_call", "reasoning_content", "reasoning", "refusal", "audio")


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def carries_content(chunk: Any) -> bool:
    """Whether a chat or completions chunk carries generated tokens (not just a role, a finish or usage)."""
    for choice in _get(chunk, "choices") or []:
        if _get(choice, "text"):
            return True
        delta = _get(choice, "delta")
        if delta is not None and any(_get(delta, name) for name in CONTENT_FIELDS):
            return True
    return False


class ChunkTimeout(TimeoutError):
    """No chunk came within the time :meth:`ChunkReader.next` was given (the read goes on)."""


class _End:
    """What a read returns at the end of the stream."""


END = _End()


async def _advance(stream: AsyncIterator[T]) -> T | _End:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return END


class ChunkReader(Generic[T]):
    """Reads an upstream stream, where a wait for the next chunk may time out without cancelling the read.

    A wait with a ``timeout`` reads in a task of its own, which goes on when the wait times
    out (so a held stream can be committed on time and its next chunk still arrives); a wait
    without one reads in the caller's task, at no cost beyond the stream's own. Reads never
    overlap. :meth:`aclose` cancels a read in progress and closes the stream, which closes
    the upstream connection.

    >>> reader = ChunkReader(provider.stream_chat(request))  # doctest: +SKIP
    >>> await reader.next(timeout=5.0)  # the first chunk; None at the end; ChunkTimeout  # doctest: +SKIP
    """

    def __init__(self, stream: AsyncIterator[T]) -> None:
        self._stream = stream
        self._pending: asyncio.Task[T | _End] | None = None
        self._finished = False

    async def next(self, timeout: float | None = None) -> T | None:
        """The next chunk, or None once the stream has ended.

        Raises :class:`ChunkTimeout` after ``timeout`` seconds without one (the read goes on),
        and re-raises what the stream raised.
        """
        if self._finished:
            return None
        try:
            if self._pending is None and timeout is None:
                item = await _advance(self._stream)
            else:
                if self._pending is None:
                    self._pending = asyncio.get_running_loop().create_task(_advance(self._stream))
                done, _ = await asyncio.wait([self._pending], timeout=timeout)
                if not done:
                    raise ChunkTimeout(f"no chunk within {timeout:g}s")
                task, self._pending = self._pending, None
                item = task.result()
        except ChunkTimeout:
            raise
        except BaseException:
            self._finished = True
            raise
        if isinstance(item, _End):
            self._finished = True
            return None
        return item

    async def aclose(self) -> None:
        """Stop reading and close the upstream stream; safe to call more than once."""
        self._finished = True
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved, so that asyncio does not log it as never retrieved
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass
class HeldStream(Generic[T]):
    """What was read up to the commit point: the chunks held back, and whether the stream ended."""

    chunks: list[T] = field(default_factory=list)
    ended: bool = False
    first_at: float | None = None
    content_chunks: int = 0


async def hold_until_commit(reader: ChunkReader[T], config: StreamCommitConfig, first_wait: float) -> HeldStream[T]:
    """Read until the commit point: the first chunk within ``first_wait`` seconds, then until
    ``config.chunks`` content chunks, ``config.max_hold_ms`` after the first chunk, or the end.

    Raises :class:`ChunkTimeout` when the first chunk is late, and what the stream raised.
    """
    held: HeldStream[T] = HeldStream()
    first = await reader.next(timeout=first_wait)
    if first is None:
        held.ended = True
        return held
    held.first_at = time.perf_counter()
    held.chunks.append(first)
    held.content_chunks += carries_content(first)
    deadline = held.first_at + config.max_hold_ms / 1000.0
    while held.content_chunks < config.chunks:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        try:
            chunk = await reader.next(timeout=remaining)
        except ChunkTimeout:
            break
        if chunk is None:
            held.ended = True
            break
        held.chunks.append(chunk)
        held.content_chunks += carries_content(chunk)
    return held
