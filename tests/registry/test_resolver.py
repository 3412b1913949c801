"""Pinning a request to a registry snapshot: set for the request (and each pull of its stream), reset after."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel

from lmdeck.db import Database
from lmdeck.pipeline.context import Completed, RequestContext, Result, Streamed
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.traces import TraceRecord
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.registry.bundle import BundleLog, StampBundle
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.prompt_step import SNAPSHOT
from lmdeck.registry.resolver import ModelResolver, pinned, pinned_stream
from lmdeck.registry.snapshot import RegistrySnapshot
from lmdeck.settings import RouteConfig, Settings


class Chunk(BaseModel):
    revision: int


class NoRoutes:
    """A route lookup that knows no route (the bundle hash is then None; pinning does not depend on it)."""

    def config(self, name: str, snapshot: RegistrySnapshot) -> RouteConfig | None:
        return None


def resolver_on(db: Database) -> ModelResolver:
    return ModelResolver(LiveRegistry(db), ProviderRegistry(), ProviderContext(Settings(), transport=None))  # type: ignore[arg-type]


def request_context() -> RequestContext:
    body = ChatCompletionRequest.model_validate({"model": "support", "messages": [{"role": "user", "content": "hi"}]})
    return RequestContext(kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name="support")


async def test_a_stream_is_pinned_only_while_a_chunk_is_pulled(db: Database) -> None:
    resolver = resolver_on(db)
    live, outer, inner = resolver.live.snapshot, RegistrySnapshot(revision=101), RegistrySnapshot(revision=102)
    seen: list[int] = []

    async def chunks() -> AsyncIterator[int]:
        for i in range(3):
            seen.append(resolver.snapshot.revision)
            yield i

    with pinned(outer):
        async for _ in pinned_stream(inner, chunks()):
            assert resolver.snapshot is outer, "between pulls the iterating context keeps its own pin"
        assert resolver.snapshot is outer
    assert resolver.snapshot is live
    assert seen == [102, 102, 102]


async def test_the_bundle_step_leaves_no_pin_behind(db: Database) -> None:
    resolver = resolver_on(db)
    live = resolver.live
    step = StampBundle(live, NoRoutes(), BundleLog(db))
    served = RegistrySnapshot(revision=7)

    async def streamed(ctx: RequestContext) -> Result:
        async def chunks() -> AsyncIterator[BaseModel]:
            for _ in range(2):
                yield Chunk(revision=resolver.snapshot.revision)

        return Streamed(chunks())

    async def whole(ctx: RequestContext) -> Result:
        return Completed(Chunk(revision=resolver.snapshot.revision))

    ctx = request_context()
    ctx.slots.put(SNAPSHOT, served)
    completed = await step(ctx, whole)
    assert isinstance(completed, Completed) and completed.response == Chunk(revision=7)
    assert resolver.snapshot is live.snapshot, "the pin is reset once the request returned"

    ctx = request_context()
    ctx.slots.put(SNAPSHOT, served)
    result = await step(ctx, streamed)
    assert isinstance(result, Streamed)
    assert resolver.snapshot is live.snapshot
    revisions = [chunk.revision async for chunk in result.chunks]  # type: ignore[attr-defined]
    assert revisions == [7, 7], "the stream's provider resolved against the request's snapshot"
    assert resolver.snapshot is live.snapshot, "after the stream the context holds its previous value"
