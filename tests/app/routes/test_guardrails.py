"""``/api/guardrails`` in process: the listing, a trial of every definition, and the audit of the declared policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.guardrails.runtime import POLICY_ACTION
from lmdeck.policy.audit import AuditLog
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_KEY = "sk-lmdeck-guard-Qw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lz0X"
ADMIN_ENV = "LMDECK_TEST_GUARDRAILS_ADMIN_KEY"


def config(tmp_path: Path, words: list[str]) -> dict[str, Any]:
    return {
        "data_dir": str(tmp_path),
        "default_routes": False,
        "admin_key": {"$env": ADMIN_ENV},
        "guardrails": {
            "definitions": {
                "mails": {"type": "regex", "options": {"patterns": [r"\S+@\S+"], "entity": "EMAIL_ADDRESS"}},
                "swear": {"type": "regex", "options": {"words": words}},
            },
            "data_policy": {"restricted": ["mails"]},
        },
        "routes": [
            {
                "name": "support",
                "targets": [{"model": "m", "base_url": "http://127.0.0.1:9/v1"}],
                "guardrails": {"input": [{"use": "mails", "action": "mask"}, {"use": "swear", "action": "block"}]},
            }
        ],
    }


async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    async with in_process_client(create_app(settings, gateway=gateway)) as http:
        http.headers["authorization"] = f"Bearer {ADMIN_KEY}"
        yield http


@pytest.fixture
async def http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    async for c in client(Settings.model_validate(config(tmp_path, ["darn"]))):
        yield c


async def test_the_listing_shows_types_definitions_and_the_data_policy(http: httpx.AsyncClient) -> None:
    listing = (await http.get("/api/guardrails")).json()
    assert "regex" in [t["name"] for t in listing["types"]]
    assert [d["name"] for d in listing["definitions"]] == ["mails", "swear"]
    assert listing["data_policy"]["restricted"] == ["mails"]


async def test_a_trial_shows_each_verdict_the_routes_action_and_the_masked_text(http: httpx.AsyncClient) -> None:
    answer = await http.post("/api/guardrails/test", json={"text": "darn, mail bob@example.com", "route": "support"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    by_name = {r["guardrail"]: r for r in report["results"]}
    assert by_name["mails"]["action"] == "mask" and by_name["mails"]["spans"][0]["entity"] == "EMAIL_ADDRESS"
    assert by_name["swear"]["action"] == "block" and by_name["swear"]["type"] == "regex"
    assert report["masked"] == "darn, mail <EMAIL_ADDRESS_1>"
    assert "bob@example.com" not in str(report["results"])


async def test_a_trial_of_an_unknown_guardrail_or_route_is_a_404(http: httpx.AsyncClient) -> None:
    unknown = await http.post("/api/guardrails/test", json={"text": "x", "guardrails": ["nope"]})
    assert unknown.status_code == 404 and "defined: mails, swear" in unknown.json()["error"]["message"]
    no_route = await http.post("/api/guardrails/test", json={"text": "x", "route": "nowhere"})
    assert no_route.status_code == 404


async def test_a_changed_policy_is_audited_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    for words in (["darn"], ["darn"], ["darn", "heck"]):
        async for _ in client(Settings.model_validate(config(tmp_path, words))):
            pass
    gateway = build_gateway(Settings.model_validate(config(tmp_path, ["x"])), sink=MemoryTraceSink())
    try:
        entries = AuditLog(gateway.db).entries(action=POLICY_ACTION)
    finally:
        await gateway.stop()
    assert len(entries) == 2  # the first start, then the change; the same policy again adds nothing
    first, second = (e.to_dict() for e in entries)
    assert first["before"] is None and first["actor"] == "config"
    swear = second["after"]["policy"]["guardrails"]["definitions"]["swear"]
    assert swear["options"]["words"] == ["darn", "heck"]
    assert second["before"]["guardrails"]["definitions"]["swear"]["options"]["words"] == ["darn"]
