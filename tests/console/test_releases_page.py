"""The console's releases page, in process: a canary's steps, metrics against the baseline with chart
data, live polling while in progress, actions for those allowed, and refusals for a viewer.

``SteadyFake`` is a FAKE provider for tests: it never calls anything and answers with its model's name.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.console import install_console
from lmdeck.protocol import ChatCompletionRequest, ChatCompletionResponse
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_RELEASES_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-releases-Zx2Cv4Bn6Mm8Lk0Jh2Gf4Ds6"


class SteadyFake:
    """A fake provider for tests (see the module docstring)."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        return ChatCompletionResponse.model_validate(
            {
                "id": "chatcmpl-fake",
                "created": int(time.time()),
                "model": self.target.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.target.model}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
        )

    async def stream_chat(self, request: Any) -> Any:
        raise NotImplementedError
        yield

    async def completions(self, request: Any) -> Any:
        raise NotImplementedError

    async def stream_completions(self, request: Any) -> Any:
        raise NotImplementedError
        yield

    async def embeddings(self, request: Any) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


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
        data = {"csrf_token": token.group(1), "api_key": self.keys[role], "next": "/console/releases"}
        signed = await self.http.post("/console/login", data=data)
        assert signed.status_code == 303, signed.text
        page = await self.http.get("/console/releases")
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert found is not None
        return found.group(1)


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "release_controller": {"analysis_tick_s": None},
            "routes": [
                {"name": "chat", "targets": [{"provider": "steady", "model": "steady"}]},
                {"name": "chat-next", "targets": [{"provider": "steady", "model": "next"}]},
            ],
        }
    )
    providers = ProviderRegistry()
    providers.add("steady", SteadyFake)
    gateway = build_gateway(settings, providers=providers, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    install_console(app, settings)
    async with in_process_client(app, timeout=30) as http:
        keys = {"admin": ADMIN_KEY}
        for role in ("developer", "viewer"):
            _, keys[role] = gateway.policy.identities.create_key(f"console {role}", role)
        gateway.policy.keys.load()
        spec = {
            "name": "next-model",
            "route": "chat",
            "candidate": {"route": "chat-next"},
            "strategy": {"steps": [50, 100], "interval_s": 0.001, "min_samples": 10},
            "metrics": [{"name": "error_rate", "tolerance": 0.5}],
        }
        created = await http.post("/api/releases", json=spec, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert created.status_code == 201, created.text
        yield Console(gateway, http, keys)


async def test_a_release_in_progress_shows_its_metrics_chart_data_and_polls(console: Console) -> None:
    csrf = await console.sign_in("admin")
    pending = await console.http.get("/console/releases/next-model")
    assert 'id="release-start"' in pending.text and 'id="release-promote"' not in pending.text
    started = await console.http.post("/console/releases/next-model/start", data={"csrf_token": csrf})
    assert started.status_code == 303
    for user in range(40):
        body = {"model": "chat", "user": f"u{user}", "messages": [{"role": "user", "content": "hi"}]}
        answered = await console.http.post("/v1/chat/completions", json=body, headers=console.api())
        assert answered.status_code == 200, answered.text
    tick = await console.http.post("/api/releases/analyze", json={}, headers=console.api())
    assert [d["decision"] for d in tick.json()["data"]] == ["promote"], tick.text

    page = await console.http.get("/console/releases/next-model")
    assert page.status_code == 200
    assert 'hx-trigger="every 5s"' in page.text and 'id="release-state">canary<' in page.text
    assert re.search(r'<tr data-metric="error_rate">.*?verdict-pass', page.text, re.S)
    chart = re.search(r'<script type="application/json" class="release-series">(.*?)</script>', page.text, re.S)
    assert chart is not None
    series = json.loads(chart.group(1))
    assert series["baseline"] == [0.0] and series["candidate"] == [0.0] and series["percent"] == [50.0]
    assert {"started", "step"} <= set(re.findall(r'<tr class="release-event"><td>[^<]*</td><td>(\w+)</td>', page.text))
    listed = await console.http.get("/console/releases")
    assert "next-model" in listed.text.split('id="releases-past"')[0]

    panel = await console.http.get("/console/releases/next-model/panel")
    assert panel.status_code == 200 and "<html" not in panel.text and 'id="release-live"' in panel.text

    rolled = await console.http.post("/console/releases/next-model/rollback", data={"csrf_token": csrf})
    assert rolled.status_code == 303
    shown = (await console.http.get("/api/releases/next-model", headers=console.api())).json()
    assert shown["state"] == "rolled_back" and shown["history"][-1]["actor"].startswith("key:")
    done = await console.http.get("/console/releases/next-model")
    assert "hx-trigger" not in done.text and 'id="release-rollback"' not in done.text


async def test_a_viewer_sees_no_buttons_and_a_forged_action_is_refused(console: Console) -> None:
    csrf = await console.sign_in("viewer")
    page = await console.http.get("/console/releases/next-model")
    assert page.status_code == 200 and "release-actions" not in page.text
    forged = await console.http.post("/console/releases/next-model/start", data={"csrf_token": csrf})
    assert forged.status_code == 403
    unknown = await console.http.get("/console/releases/no-such-release")
    assert unknown.status_code == 404
    shown = (await console.http.get("/api/releases/next-model", headers=console.api())).json()
    assert shown["state"] == "pending"
