"""Stop the work of a request whose client has gone away.

Starlette cancels a streamed response when its client disconnects, but a handler that is
still working on a whole answer (or waiting for a stream's first token) runs on: the upstream
call goes on costing tokens, and its trace says 200 for an answer nobody received.
:func:`cancel_on_disconnect` runs the work beside a watch on the connection; a disconnect
cancels the work, whose clean-up runs as for any cancellation (the record step writes the
trace with status 499, the budget and rate-limit steps give back what they held, the
upstream connection is closed)::

    try:
        return await cancel_on_disconnect(request.receive, answer(ctx))
    except ClientDisconnected:
        return Response(status_code=499)   # nobody reads it
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

T = TypeVar("T")

#: The status a request ended by its client's disconnect is recorded with (nginx's "client closed request").
CLIENT_CLOSED_REQUEST = 499


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was ready; the work was cancelled."""


async def disconnected(receive: Receive) -> None:
    """Return once the client has disconnected. Only for after the request body has been read whole:
    from then on the server's ``receive`` has nothing else to deliver."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def cancel_on_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """``await work``, cancelling it if the client disconnects first (then :class:`ClientDisconnected`).

    Work that has finished is returned even when the client has gone too: what it returned
    (a streamed response) is closed by the server's own disconnect handling.
    """
    task: asyncio.Task[T] = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected(receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            # Let its clean-up (the 499 trace, released reservations) finish before answering.
            await asyncio.wait((task,))
    if task.cancelled():
        raise ClientDisconnected()
    return task.result()
