"""The console's operations page, in process: guardrails, cache per team, flags switched through the
flag service (with history), annotation queues and their items; a viewer has no switch and a forged
one is refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.console import install_console
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_OPS_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-ops-Lo9Ki8Ju7Hy6Gt5Fr4De3Sw2Aq1"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Console:
    http: httpx.AsyncClient
    keys: dict[str, str]

    async def sign_in(self, role: str) -> str:
        self.http.cookies.clear()
        form = await self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"csrf_token": token.group(1), "api_key": self.keys[role], "next": "/console/operations"}
        assert (await self.http.post("/console/login", data=data)).status_code == 303
        page = await self.http.get("/console/operations")
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert found is not None, (page.status_code, page.text[:2000])
        return found.group(1)


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "guardrails": {"definitions": {"no-secrets": {"type": "secrets"}}},
            "tracing": {"analytics_timeout_s": 120},
        }
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    install_console(app, settings)
    async with in_process_client(app, timeout=30) as http:
        keys = {"admin": ADMIN_KEY}
        _, keys["viewer"] = gateway.policy.identities.create_key("console viewer", "viewer")
        _, keys["developer"] = gateway.policy.identities.create_key("console developer", "developer")
        gateway.policy.keys.load()
        flag = {"name": "new-layout", "type": "boolean", "enabled": True, "value": True, "default": False}
        assert (await http.post("/api/flags", json=flag, headers=AUTH)).status_code == 201
        queue = await http.put("/api/annotation-queues/review", json={"name": "review"}, headers=AUTH)
        assert queue.status_code in (200, 201), queue.text
        yield Console(http, keys)


async def test_sections_render_and_an_admin_switches_a_flag_off(console: Console) -> None:
    csrf = await console.sign_in("admin")
    page = await console.http.get("/console/operations")
    assert page.status_code == 200
    assert "no-secrets" in page.text and 'id="cache"' in page.text
    assert re.search(r'data-flag="new-layout">.*?<td class="flag-state">on</td>', page.text, re.S)
    switched = await console.http.post("/console/operations/flags/new-layout/disable", data={"csrf_token": csrf})
    assert switched.status_code == 303, switched.text
    shown = (await console.http.get("/api/flags/new-layout", headers=AUTH)).json()
    assert shown["spec"]["enabled"] is False
    history = (await console.http.get("/api/flags/new-layout/history", headers=AUTH)).json()["data"]
    assert len(history) == 2
    queue = await console.http.get("/console/operations/queues/review")
    assert queue.status_code == 200 and "queue review" in queue.text
    missing = await console.http.get("/console/operations/queues/nothing-here")
    assert missing.status_code == 404


async def test_a_viewer_has_no_flag_switch_and_a_forged_switch_is_refused(console: Console) -> None:
    csrf = await console.sign_in("viewer")
    page = await console.http.get("/console/operations")
    assert page.status_code == 200 and "flag-switch" not in page.text
    forged = await console.http.post("/console/operations/flags/new-layout/disable", data={"csrf_token": csrf})
    assert forged.status_code == 403
    assert (await console.http.get("/api/flags/new-layout", headers=AUTH)).json()["spec"]["enabled"] is True


async def test_a_developer_sees_no_switch_on_a_flag_only_admins_may_change(console: Console) -> None:
    csrf = await console.sign_in("developer")
    page = await console.http.get("/console/operations")
    assert page.status_code == 200 and "new-layout" in page.text
    assert "flag-switch" not in page.text
    forged = await console.http.post("/console/operations/flags/new-layout/disable", data={"csrf_token": csrf})
    assert forged.status_code == 403
    assert (await console.http.get("/api/flags/new-layout", headers=AUTH)).json()["spec"]["enabled"] is True
