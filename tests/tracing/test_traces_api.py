"""``/api/traces`` in-process: filters, pages, errors in OpenAI's shape, and team isolation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.factory import create_app
from lmdeck.db.scratch import scratch_database
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.sql_store import SQLTraceStore

ADMIN_KEY = "sk-lmdeck-traces-Ue3Kx8Ra5Ym1Qw7Bn4Gt9Zc2Hv6Lp0J"
PRINCIPALS = {
    "sk-viewer-a": Principal(key_id="ka", role="viewer", team_id="team-a"),
    "sk-dev-b": Principal(key_id="kb", role="developer", team_id="team-b"),
    "sk-org-viewer": Principal(key_id="ko", role="viewer"),
    "sk-inference-a": Principal(key_id="ki", role="inference", team_id="team-a"),
    "sk-team-admin": Principal(key_id="kt", role="admin", team_id="team-a"),
}


class TableAuthenticator:
    """Keys of the test principals, then whatever the gateway already accepts."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    async def authenticate(self, token: str) -> Principal | None:
        return PRINCIPALS.get(token) or await self.fallback.authenticate(token)


def trace(n: int, team: str | None, **fields: Any) -> TraceRecord:
    return TraceRecord(id=f"tr{n:03d}", created_at=1_800_000_000.0 + n, team_id=team, route="demo", **fields)


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("LMDECK_TEST_TRACES_ADMIN_KEY", ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": "LMDECK_TEST_TRACES_ADMIN_KEY"}}
    )
    app = create_app(settings)
    gateway = app.state.gateway
    gateway.authenticator = TableAuthenticator(gateway.authenticator)
    async with in_process_client(app) as http:
        SQLTraceStore(gateway.db).insert(
            [
                trace(1, "team-a"),
                trace(2, "team-b", status_code=500, error="boom"),
                trace(3, "team-a", status_code=429),
                trace(4, None),
                trace(5, "team-b", prompt_name="greet", prompt_version=2, metadata={"release": "warmer"}),
            ]
        )
        yield http


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def listed(client: httpx.AsyncClient, key: str, **params: Any) -> list[str]:
    response = await client.get("/api/traces", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    return [t["id"] for t in body["data"]]


async def test_admin_sees_every_team_and_filters_apply(client: httpx.AsyncClient) -> None:
    assert await listed(client, ADMIN_KEY) == ["tr005", "tr004", "tr003", "tr002", "tr001"]
    assert await listed(client, ADMIN_KEY, team_id="team-b") == ["tr005", "tr002"]
    assert await listed(client, ADMIN_KEY, status="error") == ["tr003", "tr002"]
    assert await listed(client, ADMIN_KEY, status="500") == ["tr002"]
    assert await listed(client, ADMIN_KEY, errors="false", since="1800000004") == ["tr005", "tr004"]
    assert await listed(client, "sk-team-admin") == ["tr005", "tr004", "tr003", "tr002", "tr001"]
    assert await listed(client, ADMIN_KEY, prompt="greet", prompt_version="2") == ["tr005"]
    assert await listed(client, ADMIN_KEY, prompt_version="1") == []
    assert await listed(client, ADMIN_KEY, release="warmer") == ["tr005"]
    assert await listed(client, "sk-viewer-a", release="warmer") == []


async def test_a_team_member_sees_only_its_team(client: httpx.AsyncClient) -> None:
    assert await listed(client, "sk-viewer-a") == ["tr003", "tr001"]
    assert await listed(client, "sk-dev-b") == ["tr005", "tr002"]
    assert await listed(client, "sk-viewer-a", team_id="team-b") == []
    assert await listed(client, "sk-viewer-a", status="error") == ["tr003"]
    # A key without a team is an organisation-wide viewer.
    assert len(await listed(client, "sk-org-viewer")) == 5


async def test_another_teams_trace_is_not_found(client: httpx.AsyncClient) -> None:
    mine = await client.get("/api/traces/tr001", headers=auth("sk-viewer-a"))
    assert mine.status_code == 200
    assert mine.json()["id"] == "tr001" and mine.json()["object"] == "trace"
    theirs = await client.get("/api/traces/tr002", headers=auth("sk-viewer-a"))
    missing = await client.get("/api/traces/nope", headers=auth("sk-viewer-a"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == "trace_not_found"
    assert (await client.get("/api/traces/tr002", headers=auth(ADMIN_KEY))).status_code == 200


async def test_keys_without_the_viewer_role_are_refused(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/traces")).status_code == 401
    assert (await client.get("/api/traces", headers=auth("sk-wrong"))).status_code == 401
    refused = await client.get("/api/traces", headers=auth("sk-inference-a"))
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    assert (await client.get("/api/traces/tr001", headers=auth("sk-inference-a"))).status_code == 403


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "sideways"}, "status"),
        ({"since": "last tuesday"}, "since"),
        ({"cursor": "%%%"}, "cursor"),
        ({"min_latency_ms": "-1"}, "min_latency_ms"),
        ({"prompt_version": "0"}, "prompt_version"),
        ({"prompt_version": "v2"}, "prompt_version"),
        ({"prompt_version": "9223372036854775808"}, "prompt_version"),
        ({"q": "a\x00b"}, "q"),
        ({"status": "error", "errors": "false"}, "errors"),
    ],
)
async def test_bad_filters_get_a_400_naming_them(client: httpx.AsyncClient, params: dict[str, str], param: str) -> None:
    response = await client.get("/api/traces", params=params, headers=auth(ADMIN_KEY))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert param in (error["param"] or "") or param in error["message"]


async def test_pages_follow_the_cursor(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        response = await client.get("/api/traces", params=params, headers=auth(ADMIN_KEY))
        body = response.json()
        seen.extend(t["id"] for t in body["data"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        params["cursor"] = body["next_cursor"]
    assert seen == ["tr005", "tr004", "tr003", "tr002", "tr001"]


async def test_a_request_through_the_gateway_is_stored(client: httpx.AsyncClient) -> None:
    request = {"model": "no-such-route", "messages": [{"role": "user", "content": "hi"}]}
    answer = await client.post(
        "/v1/chat/completions", json=request, headers={**auth(ADMIN_KEY), "x-request-id": "req-traced-1"}
    )
    assert answer.status_code == 404
    sink = client._transport.app.state.gateway.sink  # type: ignore[attr-defined]
    assert await sink.stored(10)
    found = await client.get("/api/traces", params={"client_request_id": "req-traced-1"}, headers=auth(ADMIN_KEY))
    [stored] = found.json()["data"]
    assert stored["request_id"] == answer.headers["x-request-id"] != "req-traced-1"
    assert stored["status_code"] == 404
    assert stored["request_body"]["messages"][0]["content"] == "hi"
    assert stored["route"] in (None, "no-such-route")


async def test_traces_flow_into_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    monkeypatch.setenv("LMDECK_TEST_TRACES_ADMIN_KEY", ADMIN_KEY)
    with scratch_database(server) as url:
        settings = Settings.model_validate(
            {
                "data_dir": str(tmp_path),
                "database_url": url,
                "default_routes": False,
                "admin_key": {"$env": "LMDECK_TEST_TRACES_ADMIN_KEY"},
            }
        )
        app = create_app(settings)
        gateway = app.state.gateway
        async with in_process_client(app) as http:
            for n in range(3):
                request = {"model": "absent", "messages": [{"role": "user", "content": f"nul \x00 {n}"}]}
                headers = {**auth(ADMIN_KEY), "x-request-id": f"req-pg-{n}"}
                assert (await http.post("/v1/chat/completions", json=request, headers=headers)).status_code == 404
            assert await gateway.sink.stored(10)
            listed = await http.get("/api/traces", params={"q": "nul"}, headers=auth(ADMIN_KEY))
    assert sorted(t["client_request_id"] for t in listed.json()["data"]) == ["req-pg-0", "req-pg-1", "req-pg-2"]


async def test_search_never_finds_another_teams_traces(client: httpx.AsyncClient) -> None:
    store = SQLTraceStore(client._transport.app.state.gateway.db)  # type: ignore[attr-defined]
    store.insert(
        [
            trace(10, "team-a", request_body={"messages": [{"content": "quarterly invoice for ACME"}]}),
            trace(11, "team-b", request_body={"messages": [{"content": "the invoice of team b"}]}),
            trace(12, None, error="invoice service down", status_code=502),
        ]
    )
    assert await listed(client, ADMIN_KEY, q="invoice") == ["tr012", "tr011", "tr010"]
    assert await listed(client, "sk-viewer-a", q="INVOICE") == ["tr010"]
    assert await listed(client, "sk-dev-b", q="invoice") == ["tr011"]
    assert await listed(client, "sk-viewer-a", q="team b") == []
    assert await listed(client, "sk-viewer-a", q="invoice", team_id="team-b") == []


async def test_redacted_bodies_are_not_searchable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMDECK_TEST_TRACES_ADMIN_KEY", ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": "LMDECK_TEST_TRACES_ADMIN_KEY"},
            "tracing": {"redact": "bodies"},
        }
    )
    app = create_app(settings)
    async with in_process_client(app) as http:
        request = {"model": "no-such-route", "messages": [{"role": "user", "content": "zebrafish secret"}]}
        answer = await http.post("/v1/chat/completions", json=request, headers=auth(ADMIN_KEY))
        assert answer.status_code == 404
        assert await app.state.gateway.sink.stored(10)
        assert await listed(http, ADMIN_KEY, q="zebrafish") == []
        assert len(await listed(http, ADMIN_KEY, q="no-such-route")) == 1  # the error is kept


async def test_summary_reads_the_rollups_within_the_callers_team(client: httpx.AsyncClient) -> None:
    params = {"by": "team_id,status_class", "since": "1800000000", "until": "1800000100", "quantiles": "0.5,0.99"}
    response = await client.get("/api/traces/summary", params=params, headers=auth(ADMIN_KEY))
    assert response.status_code == 200, response.text
    counts = {(g["group"]["team_id"], g["group"]["status_class"]): g["requests"] for g in response.json()["data"]}
    assert counts == {
        ("team-a", "2xx"): 1,
        ("team-a", "4xx"): 1,
        ("team-b", "5xx"): 1,
        ("team-b", "2xx"): 1,
        (None, "2xx"): 1,
    }
    assert set(response.json()["data"][0]["latency_ms"]) == {"p50", "p99"}
    mine = await client.get("/api/traces/summary", params=params, headers=auth("sk-viewer-a"))
    assert {g["group"]["team_id"] for g in mine.json()["data"]} == {"team-a"}
    theirs = await client.get(
        "/api/traces/summary", params={**params, "team_id": "team-b"}, headers=auth("sk-viewer-a")
    )
    assert theirs.json()["data"] == []
    series = await client.get(
        "/api/traces/summary", params={"since": "1800000000", "step": "60", "by": "route"}, headers=auth(ADMIN_KEY)
    )
    assert [(p["group"], p["bucket"], p["requests"]) for p in series.json()["data"]] == [
        ({"route": "demo"}, 1800000000, 5)
    ]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"by": "colour"}, "by"),
        ({"step": "90"}, "step"),
        ({"quantiles": "1.5"}, "quantiles"),
        ({"since": "soon"}, "since"),
    ],
)
async def test_bad_summaries_get_a_400_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str], param: str
) -> None:
    response = await client.get("/api/traces/summary", params={"since": "0", **params}, headers=auth(ADMIN_KEY))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_slow_analytics_answer_503_in_openais_shape_and_free_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text

    from lmdeck.policy.spend import SpendReports

    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"

    def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.db.engine.connect() as conn:
            return conn.execute(text(endless)).scalar()

    monkeypatch.setenv("LMDECK_TEST_TRACES_ADMIN_KEY", ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": "LMDECK_TEST_TRACES_ADMIN_KEY"},
            # Threads: the patched methods below exist in this process only.
            "tracing": {"analytics_timeout_s": 0.5, "analytics_workers": 1, "analytics_processes": False},
        }
    )
    app = create_app(settings)
    async with in_process_client(app) as http:
        monkeypatch.setattr(SpendReports, "report", slow)
        monkeypatch.setattr(SQLTraceStore, "query", slow)
        for path in ("/api/spend", "/api/traces"):
            response = await http.get(path, headers=auth(ADMIN_KEY))
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "analytics_unavailable" and "analytics_timeout_s" in error["message"]
            assert set(error) >= {"message", "type", "param", "code"}
        monkeypatch.undo()
        # The single worker is free again: the database stopped the query.
        assert (await http.get("/api/traces", headers=auth(ADMIN_KEY))).status_code == 200
