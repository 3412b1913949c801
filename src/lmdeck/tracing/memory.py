"""A trace sink that keeps records in memory: for tests and embedding, never durable."""

from __future__ import annotations

import asyncio

from lmdeck.protocol.traces import TraceRecord


class MemoryTraceSink:
    """Keeps every record in ``records``.

    >>> sink = MemoryTraceSink()
    """

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def submit(self, record: TraceRecord) -> asyncio.Future[None]:
        self.records.append(record)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
