"""cancel_on_disconnect: the work is cancelled when the client leaves, and left alone when it stays."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from lmdeck.gateway.disconnect import ClientDisconnected, cancel_on_disconnect


class Connection:
    """A fake ASGI ``receive`` whose client leaves when told to."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def test_a_disconnect_cancels_the_work_and_lets_its_clean_up_run() -> None:
    connection = Connection()
    cleaned = asyncio.Event()
    started = asyncio.Event()

    async def work() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # clean-up that itself awaits
            cleaned.set()
        return "never"

    call = asyncio.ensure_future(cancel_on_disconnect(connection.receive, work()))
    await started.wait()
    connection.gone.set()
    with pytest.raises(ClientDisconnected):
        await call
    assert cleaned.is_set()


async def test_work_that_finishes_is_returned() -> None:
    async def work() -> str:
        return "answer"

    assert await cancel_on_disconnect(Connection().receive, work()) == "answer"


async def test_work_that_fails_raises_its_own_error() -> None:
    async def work() -> str:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await cancel_on_disconnect(Connection().receive, work())


async def test_cancelling_the_caller_cancels_the_work() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    call = asyncio.ensure_future(cancel_on_disconnect(Connection().receive, work()))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert cancelled.is_set()
