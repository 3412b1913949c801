"""``InternalErrorMiddleware``: an unexpected error is a 500 in OpenAI's shape naming the request id."""

from __future__ import annotations

import httpx
from starlette.types import Receive, Scope, Send

from lmdeck.app.middleware.internal_error import InternalErrorMiddleware
from lmdeck.app.middleware.request_id import RequestIdMiddleware


async def broken(scope: Scope, receive: Receive, send: Send) -> None:
    raise ValueError("a bug")


async def test_the_500_names_the_request_id_the_response_carries() -> None:
    app = RequestIdMiddleware(InternalErrorMiddleware(broken))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lmdeck") as client:
        response = await client.get("/api/things")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("req_")
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert error["message"] == f"internal error; the gateway log names request {request_id}"
