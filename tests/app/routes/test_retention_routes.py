"""``/api/retention/policies`` and ``/api/traces/{id}/hold`` in-process: admin only, validated, audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.factory import create_app
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.expiry import held
from lmdeck.tracing.sql_store import SQLTraceStore

ADMIN_KEY = "sk-lmdeck-retention-Qe3Kx8Ra5Ym1Qw7Bn4Gt9Zc2Hv6Lp0J"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("LMDECK_TEST_RETENTION_ADMIN_KEY", ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": "LMDECK_TEST_RETENTION_ADMIN_KEY"},
            "tracing": {"retention": {"policies": [{"name": "cfg", "route": "chat", "trace_days": 60}]}},
        }
    )
    app = create_app(settings)
    async with in_process_client(app) as http:
        SQLTraceStore(app.state.gateway.db).insert([TraceRecord(id="tr1", created_at=1_800_000_000.0, route="chat")])
        http.app = app  # type: ignore[attr-defined]
        yield http


async def viewer_key(client: httpx.AsyncClient) -> dict[str, str]:
    made = await client.post("/api/keys", json={"name": "v", "role": "viewer"}, headers=ADMIN)
    assert made.status_code in (200, 201), made.text
    return {"authorization": f"Bearer {made.json()['key']}"}


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()["error"]
    assert set(body) >= {"message", "type", "param", "code"}
    return dict(body)


async def test_policies_are_stored_listed_and_deleted_by_an_admin_with_audit(client: httpx.AsyncClient) -> None:
    policy = {"name": "a", "team": "team-a", "body_days": 7}
    put = await client.put("/api/retention/policies/a", json=policy, headers=ADMIN)
    assert put.status_code == 200 and put.json()["created"] is True
    again = await client.put("/api/retention/policies/a", json={**policy, "body_days": 3}, headers=ADMIN)
    assert again.json()["created"] is False
    listed = (await client.get("/api/retention/policies", headers=ADMIN)).json()["data"]
    assert [(p["name"], p["body_days"], p["source"]) for p in listed] == [("a", 3, "api"), ("cfg", None, "config")]
    clash = await client.put("/api/retention/policies/b", json={**policy, "name": "b"}, headers=ADMIN)
    assert clash.status_code == 409 and "already covers team team-a" in error(clash)["message"]
    bad = await client.put("/api/retention/policies/c", json={"name": "c", "body_days": 1}, headers=ADMIN)
    assert bad.status_code == 400 and "neither `team` nor `route`" in error(bad)["message"]
    unknown = await client.put("/api/retention/policies/c", json={"name": "c", "team": "t", "days": 1}, headers=ADMIN)
    assert unknown.status_code == 400
    mismatch = await client.put("/api/retention/policies/d", json={**policy, "name": "e"}, headers=ADMIN)
    assert mismatch.status_code == 400 and error(mismatch)["param"] == "name"
    assert (await client.delete("/api/retention/policies/a", headers=ADMIN)).status_code == 200
    gone = await client.delete("/api/retention/policies/cfg", headers=ADMIN)
    assert gone.status_code == 404 and "config file" in error(gone)["message"]
    audit = (await client.get("/api/audit", params={"target": "retention:a"}, headers=ADMIN)).json()["data"]
    assert [e["action"] for e in audit] == [
        "retention.policy_created",
        "retention.policy_updated",
        "retention.policy_deleted",
    ]
    viewer = await viewer_key(client)
    assert (await client.get("/api/retention/policies", headers=viewer)).status_code == 403
    assert (await client.put("/api/retention/policies/a", json=policy, headers=viewer)).status_code == 403


async def test_a_trace_is_held_and_released_by_an_admin_with_audit(client: httpx.AsyncClient) -> None:
    db = client.app.state.gateway.db  # type: ignore[attr-defined]
    viewer = await viewer_key(client)
    assert (await client.post("/api/traces/tr1/hold", json={}, headers=viewer)).status_code == 403
    hold = await client.post("/api/traces/tr1/hold", json={"reason": "case 114"}, headers=ADMIN)
    assert hold.status_code == 200 and hold.json() == {"id": "tr1", "legal_hold": True, "changed": True}
    assert held(db) == ["tr1"]
    missing = await client.post("/api/traces/nope/hold", json={}, headers=ADMIN)
    assert missing.status_code == 404 and error(missing)["code"] == "trace_not_found"
    released = await client.delete("/api/traces/tr1/hold", headers=ADMIN)
    assert released.json() == {"id": "tr1", "legal_hold": False, "changed": True}
    assert held(db) == []
    audit = (await client.get("/api/audit", params={"target": "trace:tr1"}, headers=ADMIN)).json()["data"]
    assert [(e["action"], e["after"]["reason"]) for e in audit] == [
        ("trace.held", "case 114"),
        ("trace.released", None),
    ]
