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
    """Marks the end of the upstream stream in the reader's queue."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


END = _End()


class ChunkReader(Generic[T]):
    """Reads an upstream stream in a task of its own, one chunk ahead of its consumer.

    A wait for the next chunk can then time out (to commit a held stream) without cancelling
    the read itself, and the stream is always advanced from the same task. :meth:`aclose`
    cancels the read and closes the stream, which closes the upstream connection.

    >>> reader = ChunkReader(provider.stream_chat(request))  # doctest: +SKIP
    >>> await reader.next(timeout=5.0)  # the first chunk; None at the end; ChunkTimeout  # doctest: +SKIP
    """

    def __init__(self, stream: AsyncIterator[T]) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[T | _End | _Failed] = asyncio.Queue(maxsize=1)
        self._finished = False
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for item in self._stream:
                await self._queue.put(item)
        except Exception as exc:
            await self._queue.put(_Failed(exc))
            return
        finally:
            aclose = getattr(self._stream, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._queue.put(END)

    async def next(self, timeout: float | None = None) -> T | None:
        """The next chunk, or None once the stream has ended.

        Raises :class:`ChunkTimeout` after ``timeout`` seconds without one (the read goes on),
        and re-raises what the stream raised.
        """
        if self._finished:
            return None
        if timeout is None:
            item = await self._queue.get()
        else:
            try:
                async with asyncio.timeout(timeout):
                    item = await self._queue.get()
            except TimeoutError:
                raise ChunkTimeout(f"no chunk within {timeout:g}s") from None
        if isinstance(item, _End):
            self._finished = True
            return None
        if isinstance(item, _Failed):
            self._finished = True
            raise item.error
        return item

    async def aclose(self) -> None:
        """Stop reading and close the upstream stream; safe to call more than once."""
        self._finished = True
        if not self._task.done():
            self._task.cancel()
        await asyncio.wait([self._task])


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
