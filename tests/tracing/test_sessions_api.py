"""``/api/sessions`` in-process: totals, a session's traces in order, team isolation, errors in OpenAI's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.factory import create_app
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.sql_store import SQLTraceStore

ADMIN_KEY = "sk-lmdeck-sessions-Vb4Kq8Rw2Yn6Mt1Xc9Hs3Lp7Gd5Jz0F"
PRINCIPALS = {
    "sk-viewer-a": Principal(key_id="ka", role="viewer", team_id="team-a"),
    "sk-viewer-b": Principal(key_id="kb", role="viewer", team_id="team-b"),
    "sk-inference-a": Principal(key_id="ki", role="inference", team_id="team-a"),
}


class TableAuthenticator:
    """Keys of the test principals, then whatever the gateway already accepts."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    async def authenticate(self, token: str) -> Principal | None:
        return PRINCIPALS.get(token) or await self.fallback.authenticate(token)


def call(n: int, session: str | None, team: str | None) -> TraceRecord:
    return TraceRecord(
        id=f"ss{n:03d}", created_at=1_800_000_000.0 + n, session_id=session, team_id=team, route="demo", cost_micros=7
    )


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("LMDECK_TEST_SESSIONS_ADMIN_KEY", ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": "LMDECK_TEST_SESSIONS_ADMIN_KEY"},
            "tracing": {"analytics_processes": False},  # threads: no worker processes to start per test
        }
    )
    app = create_app(settings)
    gateway = app.state.gateway
    gateway.authenticator = TableAuthenticator(gateway.authenticator)
    async with in_process_client(app) as http:
        SQLTraceStore(gateway.db).insert(
            [call(1, "chat-1", "team-a"), call(2, "chat-1", "team-b"), call(3, "chat-1", "team-a"), call(4, None, None)]
        )
        yield http


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_team_lists_and_reads_only_its_own_sessions(client: httpx.AsyncClient) -> None:
    listed = await client.get("/api/sessions", headers=auth("sk-viewer-a"))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["object"] == "list" and body["has_more"] is False
    assert [(s["id"], s["team_id"], s["requests"], s["cost_micros"]) for s in body["data"]] == [
        ("chat-1", "team-a", 2, 14)
    ]
    shown = await client.get("/api/sessions/chat-1", headers=auth("sk-viewer-a"))
    assert shown.status_code == 200, shown.text
    assert shown.json()["object"] == "session" and shown.json()["requests"] == 2
    assert [t["id"] for t in shown.json()["data"]] == ["ss001", "ss003"]
    # Another team's view of the same id holds only its own trace; naming another team finds nothing.
    theirs = await client.get("/api/sessions/chat-1", headers=auth("sk-viewer-b"))
    assert [t["id"] for t in theirs.json()["data"]] == ["ss002"]
    other = await client.get("/api/sessions", params={"team_id": "team-b"}, headers=auth("sk-viewer-a"))
    assert other.json()["data"] == []
    hidden = await client.get("/api/sessions/chat-1", params={"team_id": "team-b"}, headers=auth("sk-viewer-a"))
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "session_not_found"


async def test_an_admin_sees_every_team_and_can_name_one(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/sessions", headers=auth(ADMIN_KEY))).json()
    assert [(s["id"], s["team_id"]) for s in listed["data"]] == [("chat-1", "team-a"), ("chat-1", "team-b")]
    one = (await client.get("/api/sessions/chat-1", params={"team_id": "team-b"}, headers=auth(ADMIN_KEY))).json()
    assert [t["id"] for t in one["data"]] == ["ss002"]
    traces = await client.get("/api/traces", params={"session_id": "chat-1"}, headers=auth(ADMIN_KEY))
    assert [t["id"] for t in traces.json()["data"]] == ["ss003", "ss002", "ss001"]


async def test_bad_parameters_and_roles_are_refused_in_openais_shape(client: httpx.AsyncClient) -> None:
    for params in ({"limit": "0"}, {"cursor": "nonsense"}, {"since": "yesterday-ish"}):
        response = await client.get("/api/sessions", params=params, headers=auth(ADMIN_KEY))
        assert response.status_code in (400, 422), (params, response.text)
        assert response.json()["error"]["message"]
    assert (await client.get("/api/sessions", headers=auth("sk-inference-a"))).status_code == 403
    assert (await client.get("/api/sessions")).status_code == 401


async def test_a_request_naming_a_bad_session_id_is_refused_by_name(client: httpx.AsyncClient) -> None:
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    response = await client.post(
        "/v1/chat/completions", json=body, headers={**auth(ADMIN_KEY), "x-lmdeck-session-id": "two words"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "x-lmdeck-session-id"
    body["metadata"] = {"session_id": "x" * 200}
    response = await client.post("/v1/chat/completions", json=body, headers=auth(ADMIN_KEY))
    assert response.status_code == 400 and response.json()["error"]["param"] == "metadata.session_id"
