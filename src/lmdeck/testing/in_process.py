"""A started gateway app and an HTTP client that reaches it in process (ASGI, no socket).

    app = create_app(gateway=build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False))
    async with in_process_client(app) as http:
        await http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})

The gateway in ``app.state.gateway`` is started on entry and stopped on exit, as
``lmdeck serve`` would; requests go to ``http://lmdeck.test``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from lmdeck.app.assembly import Gateway


@asynccontextmanager
async def in_process_client(app: FastAPI, *, timeout: float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``app``'s gateway and yield a client for it; ``timeout`` is per request (httpx's default 5s)."""
    gateway: Gateway = app.state.gateway
    await gateway.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://lmdeck.test", timeout=timeout
        ) as client:
            yield client
    finally:
        await gateway.stop()
