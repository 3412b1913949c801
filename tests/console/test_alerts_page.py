"""The console's alerts page, in process: rules, an open alert acknowledged and silenced by a developer
(audited, through the alerts API's service), and a viewer without buttons whose forged post is refused.

The firing alert is written into the incident store directly, as the rule engine would write it, so the
test does not wait on an evaluation.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.console import install_console
from lmdeck.monitoring.incidents import Incident, IncidentStore
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_ALERTS_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-alerts-Qa1Ws2Ed3Rf4Tg5Yh6Uj7Ik8"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
RULE = {"name": "errors-high", "signal": {"metric": "error_rate", "by": ["route"]}, "threshold": 0.1}


@dataclass
class Console:
    http: httpx.AsyncClient
    keys: dict[str, str]
    alert_id: str

    async def sign_in(self, role: str) -> str:
        self.http.cookies.clear()
        form = await self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"csrf_token": token.group(1), "api_key": self.keys[role], "next": "/console/alerts"}
        assert (await self.http.post("/console/login", data=data)).status_code == 303
        page = await self.http.get("/console/alerts")
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert found is not None
        return found.group(1)


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": ADMIN_ENV}}
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    install_console(app, settings)
    async with in_process_client(app, timeout=30) as http:
        keys = {"admin": ADMIN_KEY}
        for role in ("developer", "viewer"):
            _, keys[role] = gateway.policy.identities.create_key(f"console {role}", role)
        gateway.policy.keys.load()
        assert (await http.put("/api/alerts/rules/errors-high", json=RULE, headers=AUTH)).status_code in (200, 201)
        now = time.time()
        incident = Incident(
            id="inc_console_test",
            rule="errors-high",
            group_key='{"route": "chat"}',
            labels={"rule": "errors-high", "severity": "warning", "route": "chat"},
            state="firing",
            severity="warning",
            value=0.4,
            started_at=now - 60,
            fired_at=now - 30,
            summary="error_rate 0.4 > 0.1",
        )
        with gateway.db.engine.begin() as conn:
            IncidentStore.insert(conn, incident)
        yield Console(http, keys, incident.id)


async def test_a_developer_acknowledges_and_silences_a_firing_alert(console: Console) -> None:
    csrf = await console.sign_in("admin")
    page = await console.http.get("/console/alerts")
    assert page.status_code == 200 and "errors-high" in page.text
    row = re.search(rf'data-alert="{console.alert_id}" data-state="firing">(.*?)</tr>', page.text, re.S)
    assert row is not None and 'class="ack"' in row.group(1) and "route=chat" in row.group(1)
    acked = await console.http.post(f"/console/alerts/{console.alert_id}/ack", data={"csrf_token": csrf})
    assert acked.status_code == 303, acked.text
    shown = (await console.http.get(f"/api/alerts/{console.alert_id}", headers=AUTH)).json()
    assert shown["state"] == "acknowledged" and shown["acknowledged_by"].startswith("key:")
    again = await console.http.post(f"/console/alerts/{console.alert_id}/ack", data={"csrf_token": csrf})
    assert again.status_code == 409
    silenced = await console.http.post(
        f"/console/alerts/{console.alert_id}/silence", data={"csrf_token": csrf, "hours": "2"}
    )
    assert silenced.status_code == 303, silenced.text
    silences = (await console.http.get("/api/alerts/silences", headers=AUTH)).json()["data"]
    assert [s["matchers"] for s in silences] == [{"rule": "errors-high", "route": "chat"}]
    too_long = await console.http.post(
        f"/console/alerts/{console.alert_id}/silence", data={"csrf_token": csrf, "hours": "100000"}
    )
    assert too_long.status_code in (400, 422)
    audit = (await console.http.get("/api/audit", headers=AUTH)).json()["data"]
    assert any(a["action"] == "alerts.alert.acknowledge" for a in audit)


async def test_a_viewer_sees_no_alert_buttons_and_a_forged_ack_is_refused(console: Console) -> None:
    csrf = await console.sign_in("viewer")
    page = await console.http.get("/console/alerts")
    assert page.status_code == 200 and 'class="ack"' not in page.text and 'class="silence"' not in page.text
    forged = await console.http.post(f"/console/alerts/{console.alert_id}/ack", data={"csrf_token": csrf})
    assert forged.status_code == 403
    shown = (await console.http.get(f"/api/alerts/{console.alert_id}", headers=AUTH)).json()
    assert shown["state"] == "firing"
