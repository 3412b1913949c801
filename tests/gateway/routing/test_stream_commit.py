"""The stream commit point: the chunk reader and holding a stream's first chunks back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lmdeck.gateway.routing.stream_commit import ChunkReader, ChunkTimeout, carries_content, hold_until_commit
from lmdeck.protocol import ChatCompletionChunk
from lmdeck.providers.base import UpstreamError
from lmdeck.settings import StreamCommitConfig


def chunk(delta: dict[str, object], finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="c", created=0, model="m", choices=[{"index": 0, "delta": delta, "finish_reason": finish}]
    )


ROLE = chunk({"role": "assistant", "content": ""})


def words(*texts: str) -> list[ChatCompletionChunk]:
    return [chunk({"content": t}) for t in texts]


class Upstream:
    """An upstream stream of ``chunks``, then (optionally) an error or silence; notes whether it was closed."""

    def __init__(self, chunks: list[ChatCompletionChunk], then: str = "end") -> None:
        self.chunks = chunks
        self.then = then
        self.closed = False

    async def stream(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            for c in self.chunks:
                yield c
            if self.then == "fail":
                raise UpstreamError(502, "dropped")
            if self.then == "stall":
                await asyncio.sleep(3600)
        finally:
            self.closed = True


def content(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(str(c.choices[0]["delta"].get("content") or "") for c in chunks)


def test_only_generated_tokens_count_as_content() -> None:
    assert not carries_content(ROLE) and not carries_content(chunk({}, "stop"))
    assert carries_content(chunk({"content": "hi"}))
    assert carries_content(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}))
    assert carries_content({"choices": [{"index": 0, "text": "hi"}]})
    assert not carries_content(ChatCompletionChunk(id="c", created=0, model="m", choices=[]))


async def test_the_reader_hands_on_chunks_then_the_end() -> None:
    upstream = Upstream([ROLE, *words("a ", "b")])
    reader = ChunkReader(upstream.stream())
    got = [await reader.next(), await reader.next(), await reader.next()]
    assert got[0] is ROLE and content(got[1:]) == "a b"  # type: ignore[arg-type]
    assert await reader.next() is None and await reader.next() is None
    await reader.aclose()
    assert upstream.closed


async def test_a_wait_that_times_out_loses_nothing() -> None:
    release = asyncio.Event()

    async def late() -> AsyncIterator[ChatCompletionChunk]:
        await release.wait()
        yield words("late ")[0]
        yield words("then")[0]

    reader = ChunkReader(late())
    with pytest.raises(ChunkTimeout):
        await reader.next(timeout=0.01)
    release.set()
    # The read that timed out goes on: its chunk comes next, then the rest.
    arrived = [await reader.next(), await reader.next()]
    assert content([c for c in arrived if c is not None]) == "late then"
    assert await reader.next() is None
    await reader.aclose()


async def test_the_reader_raises_what_the_stream_raised() -> None:
    reader = ChunkReader(Upstream(words("a"), then="fail").stream())
    assert await reader.next() is not None
    with pytest.raises(UpstreamError, match="dropped"):
        await reader.next()
    assert await reader.next() is None
    await reader.aclose()


async def test_closing_the_reader_closes_a_silent_stream() -> None:
    upstream = Upstream([ROLE], then="stall")
    reader = ChunkReader(upstream.stream())
    assert await reader.next() is ROLE
    await reader.aclose()
    await reader.aclose()
    assert upstream.closed


async def test_the_hold_lasts_until_enough_content_chunks() -> None:
    reader = ChunkReader(Upstream([ROLE, *words("a ", "b ", "c")]).stream())
    held = await hold_until_commit(reader, StreamCommitConfig(chunks=2, max_hold_ms=5000), first_wait=5)
    assert held.chunks[0] is ROLE and content(held.chunks) == "a b " and not held.ended
    assert held.content_chunks == 2 and held.first_at is not None
    rest = await reader.next()
    assert rest is not None and content([rest]) == "c"
    await reader.aclose()


async def test_a_short_stream_is_held_whole() -> None:
    reader = ChunkReader(Upstream([ROLE, *words("a"), chunk({}, "stop")]).stream())
    held = await hold_until_commit(reader, StreamCommitConfig(chunks=5), first_wait=5)
    assert held.ended and len(held.chunks) == 3
    await reader.aclose()


async def test_the_hold_ends_after_its_time_when_chunks_stop_coming() -> None:
    upstream = Upstream([ROLE, *words("a")], then="stall")
    reader = ChunkReader(upstream.stream())
    # The hold is long enough for the chunk already there to be read on a loaded machine too.
    held = await hold_until_commit(reader, StreamCommitConfig(chunks=5, max_hold_ms=500), first_wait=5)
    assert content(held.chunks) == "a" and not held.ended
    await reader.aclose()
    assert upstream.closed


async def test_no_hold_commits_at_the_first_chunk() -> None:
    reader = ChunkReader(Upstream([ROLE, *words("a")]).stream())
    held = await hold_until_commit(reader, StreamCommitConfig(chunks=0), first_wait=5)
    assert held.chunks == [ROLE]
    await reader.aclose()


async def test_a_late_first_chunk_times_out_and_a_failure_before_the_commit_point_is_raised() -> None:
    reader = ChunkReader(Upstream([], then="stall").stream())
    with pytest.raises(ChunkTimeout):
        await hold_until_commit(reader, StreamCommitConfig(), first_wait=0.01)
    await reader.aclose()

    reader = ChunkReader(Upstream([ROLE, *words("a ")], then="fail").stream())
    with pytest.raises(UpstreamError, match="dropped"):
        await hold_until_commit(reader, StreamCommitConfig(chunks=3, max_hold_ms=5000), first_wait=5)
    await reader.aclose()
