"""The console's registry page, in process: entries, a label move (audited, CSRF, roles), its history,
a side-by-side prompt diff, and dataset rows with provenance."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.console import install_console
from lmdeck.policy.identity_store import IdentityStore
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_REGISTRY_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-registry-Qw3Er5Ty7Ui9Op1As3Df5Gh7"


@dataclass
class Console:
    gateway: Gateway
    http: httpx.AsyncClient
    keys: dict[str, str]

    def api(self, role: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[role]}"}

    async def sign_in(self, role: str) -> str:
        """Sign in with the role's key (replacing any session); the CSRF token of the first page."""
        self.http.cookies.clear()
        form = await self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        signed = await self.http.post(
            "/console/login",
            data={"csrf_token": token.group(1), "api_key": self.keys[role], "next": "/console/registry"},
        )
        assert signed.status_code == 303, signed.text
        page = await self.http.get("/console/registry")
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
    store = IdentityStore(gateway.db)
    keys = {"admin": ADMIN_KEY}
    for role in ("developer", "viewer"):
        keys[role] = store.create_key(f"console {role}", role)[1]
    async with in_process_client(app) as http:
        await gateway.policy.keys.reload()
        deck = Console(gateway, http, keys)
        prompts = "/api/registry/prompts/greet/versions"
        for text in ("Hello {{ name }}\nBe brief.", "Hello {{ name }}\nBe thorough.\nSign off."):
            created = await http.post(prompts, json={"text": text, "variables": {"name": "string"}}, headers=deck.api())
            assert created.status_code == 201, created.text
        yield deck


async def test_a_label_move_is_made_through_the_catalog_and_shows_in_the_history(console: Console) -> None:
    csrf = await console.sign_in("admin")
    page = await console.http.get("/console/registry/prompts/greet")
    assert page.status_code == 200 and 'id="move-form"' in page.text
    moved = await console.http.post(
        "/console/registry/prompts/greet/move",
        data={"csrf_token": csrf, "pointer": "production", "version": "2", "reason": "ship thorough"},
    )
    assert moved.status_code == 303 and moved.headers["location"] == "/console/registry/prompts/greet"
    resolved = await console.http.get("/api/registry/prompts/greet/resolve", headers=console.api("viewer"))
    assert resolved.json()["version"] == 2
    history = (await console.http.get("/api/registry/prompts/greet/history", headers=console.api())).json()["data"]
    assert [(m["label"], m["to_version"], m["reason"]) for m in history] == [("production", 2, "ship thorough")]
    audit = (await console.http.get("/api/audit", headers=console.api())).json()["data"]
    assert any(a["action"].startswith("prompt.label.") and "greet" in a["target"] for a in audit)
    page = await console.http.get("/console/registry/prompts/greet")
    row = re.search(r'<tr class="history-row">.*?</tr>', page.text, re.S)
    assert row is not None and "production" in row.group(0) and "v2" in row.group(0) and "ship thorough" in row.group(0)


async def test_a_viewer_sees_no_move_form_and_a_forged_or_tokenless_move_is_refused(console: Console) -> None:
    csrf = await console.sign_in("viewer")
    page = await console.http.get("/console/registry/prompts/greet")
    assert page.status_code == 200 and 'id="move-form"' not in page.text
    forged = await console.http.post(
        "/console/registry/prompts/greet/move", data={"csrf_token": csrf, "pointer": "production", "version": "1"}
    )
    assert forged.status_code == 403
    await console.sign_in("developer")
    tokenless = await console.http.post(
        "/console/registry/prompts/greet/move", data={"pointer": "production", "version": "1"}
    )
    assert tokenless.status_code == 403
    history = (await console.http.get("/api/registry/prompts/greet/history", headers=console.api())).json()["data"]
    assert history == []


async def test_the_diff_shows_the_two_versions_side_by_side(console: Console) -> None:
    await console.sign_in("viewer")
    page = await console.http.get("/console/registry/prompts/greet/diff?from=1&to=2")
    assert page.status_code == 200
    rows = re.findall(r'<tr class="diff-(\w+)">(.*?)</tr>', page.text, re.S)
    assert [tag for tag, _ in rows] == ["equal", "replace", "insert"]
    assert "Be brief." in rows[1][1] and "Be thorough." in rows[1][1] and "Sign off." in rows[2][1]
    missing = await console.http.get("/console/registry/prompts/greet/diff?from=1&to=9")
    assert missing.status_code == 404 and "version 9" in missing.text
    bad = await console.http.get("/console/registry/prompts/greet/diff?from=zero&to=2")
    assert bad.status_code == 422 or bad.status_code == 400


async def test_dataset_rows_are_paged_with_their_provenance(console: Console) -> None:
    rows = [{"input": f"question {n}", "expected": f"answer {n}"} for n in range(60)]
    created = await console.http.post(
        "/api/registry/datasets/faq/versions", json={"rows": rows, "description": "hand written"}, headers=console.api()
    )
    assert created.json()["created"] is True, created.text
    await console.sign_in("viewer")
    first = await console.http.get("/console/registry/datasets/faq")
    assert first.status_code == 200, first.text
    assert "question 0" in first.text and "question 50" not in first.text
    assert 'id="next-rows"' in first.text and "hand written" in first.text
    second = await console.http.get("/console/registry/datasets/faq?version=1&offset=50")
    assert "question 59" in second.text and "question 49" not in second.text and 'id="next-rows"' not in second.text
    index = await console.http.get("/console/registry")
    assert "faq" in index.text and "greet" in index.text
