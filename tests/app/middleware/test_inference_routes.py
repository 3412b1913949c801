"""``InferenceRoutes`` answers exactly as FastAPI's router did: same statuses, error bodies and headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.app.middleware.inference_routes import InferenceRoutes, inference_routes
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

KEY = "sk-lmdeck-fastpath-Jt3Xc8Lq5Wn2Rv9Hm6Kb1Zp4Gf7Ds0Q"
CHAT = {"model": "nowhere", "messages": [{"role": "user", "content": "hi"}]}
#: Headers whose values differ from one request to the next.
PER_REQUEST = {"x-request-id", "traceparent", "date"}

Send = Callable[[httpx.AsyncClient], Any]


def _app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, fast: bool) -> FastAPI:
    monkeypatch.setenv("LMDECK_TEST_FASTPATH_KEY", KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path / ("fast" if fast else "router")),
            "default_routes": False,
            "max_body_bytes": 2048,
            "admin_key": {"$env": "LMDECK_TEST_FASTPATH_KEY"},
        }
    )
    app = create_app(settings, gateway=build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False))
    if not fast:
        # The same app with FastAPI's router serving the inference routes, as before.
        app.user_middleware = [m for m in app.user_middleware if m.cls is not InferenceRoutes]
    return app


@pytest.fixture
def clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], AbstractAsyncContextManager[tuple[httpx.AsyncClient, httpx.AsyncClient]]]:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def both() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
        async with (
            in_process_client(_app(tmp_path, monkeypatch, fast=True)) as fast,
            in_process_client(_app(tmp_path, monkeypatch, fast=False)) as router,
        ):
            yield fast, router

    return both


def _shape(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, "*" if k in PER_REQUEST else v) for k, v in response.headers.items())
    return response.status_code, response.content, headers


AUTH = {"authorization": f"Bearer {KEY}"}
CASES: dict[str, Send] = {
    "no key": lambda c: c.post("/v1/chat/completions", json=CHAT),
    "unknown key": lambda c: c.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-nope"}),
    "not JSON": lambda c: c.post("/v1/chat/completions", content=b"{nope", headers=AUTH),
    "empty body": lambda c: c.post("/v1/chat/completions", content=b"", headers=AUTH),
    "not an object": lambda c: c.post("/v1/chat/completions", json=[1], headers=AUTH),
    "wrong type": lambda c: c.post("/v1/chat/completions", json={**CHAT, "max_tokens": "5"}, headers=AUTH),
    "unknown field": lambda c: c.post("/v1/chat/completions", json={**CHAT, "frobnicate": 1}, headers=AUTH),
    "huge integer": lambda c: c.post(
        "/v1/chat/completions", content=b'{"model": "x", "n": 1' + b"0" * 30 + b"}", headers=AUTH
    ),
    "body too large": lambda c: c.post("/v1/chat/completions", content=b"x" * 4096, headers=AUTH),
    "unknown model": lambda c: c.post("/v1/chat/completions", json=CHAT, headers=AUTH),
    "completions, no key": lambda c: c.post("/v1/completions", json={"model": "x", "prompt": "hi"}),
    "embeddings, bad JSON": lambda c: c.post("/v1/embeddings", content=b"[", headers=AUTH),
    "GET is a 405": lambda c: c.get("/v1/chat/completions", headers=AUTH),
    "trailing slash": lambda c: c.post("/v1/chat/completions/", json=CHAT, headers=AUTH),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_answers_as_the_router_did(clients: Any, case: str) -> None:
    async with clients() as (fast, router):
        ours, theirs = await CASES[case](fast), await CASES[case](router)
    assert _shape(ours) == _shape(theirs)
    assert ours.status_code >= 300  # a trailing slash is redirected, as before; the rest are refused
    assert ours.status_code < 400 or "error" in ours.json()
    assert ours.headers["x-request-id"].startswith("req_")


async def test_a_refusal_is_recorded_with_the_route_kind_as_before(clients: Any) -> None:
    async with clients() as (fast, router):
        for client in (fast, router):
            await client.post("/v1/chat/completions", json=CHAT)
        records = [app_records(client) for client in (fast, router)]
    assert [(r.kind, r.status_code, r.error_type) for r in records[0]] == [
        (r.kind, r.status_code, r.error_type) for r in records[1]
    ]


def app_records(client: httpx.AsyncClient) -> list[Any]:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app: Any = transport.app
    return list(app.state.gateway.sink.records)


def test_finds_the_three_routes_and_names_the_fix_for_a_missing_one() -> None:
    app = FastAPI()
    with pytest.raises(LookupError, match=r"include lmdeck\.app\.routes\.openai_api\.router"):
        inference_routes(app)
