"""The console's routes page, in process: live breaker state and weights per target; an admin's weight
edit goes through ``apply`` (audited, live at once); a viewer sees no form and cannot post one.

``NamedFake`` is a FAKE provider for tests: it never calls anything and answers with its model's name;
model ``down`` always fails (a 503, not retried).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.console import install_console
from lmdeck.protocol import ChatCompletionRequest, ChatCompletionResponse
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.providers.base import UpstreamError
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_ROUTES_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-routes-Mn1Bv2Cx3Zl4Kj5Hg6Fd7Sa8"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


class NamedFake:
    """A fake provider for tests (see the module docstring)."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        if self.target.model == "down":
            raise UpstreamError(503, "the fake target is down", retryable=False)
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
    http: httpx.AsyncClient
    keys: dict[str, str]

    async def sign_in(self, role: str) -> str:
        self.http.cookies.clear()
        form = await self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"csrf_token": token.group(1), "api_key": self.keys[role], "next": "/console/routes"}
        assert (await self.http.post("/console/login", data=data)).status_code == 303
        page = await self.http.get("/console/routes")
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert found is not None
        return found.group(1)

    async def served_by(self, n: int) -> Counter[str]:
        seen: Counter[str] = Counter()
        for i in range(n):
            body = {"model": "split", "messages": [{"role": "user", "content": f"q{i}"}]}
            answer = await self.http.post("/v1/chat/completions", json=body, headers=AUTH)
            seen[answer.json()["model"]] += 1
        return seen


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "breaker": {"failure_threshold": 1},
            "routes": [
                {
                    "name": "split",
                    "strategy": "weighted",
                    "targets": [{"provider": "fake", "model": "blue"}, {"provider": "fake", "model": "green"}],
                },
                {"name": "broken", "targets": [{"provider": "fake", "model": "down", "max_retries": 0}]},
            ],
        }
    )
    providers = ProviderRegistry()
    providers.add("fake", NamedFake)
    gateway = build_gateway(settings, providers=providers, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    install_console(app, settings)
    async with in_process_client(app, timeout=30) as http:
        keys = {"admin": ADMIN_KEY}
        _, keys["viewer"] = gateway.policy.identities.create_key("console viewer", "viewer")
        gateway.policy.keys.load()
        yield Console(http, keys)


async def test_live_breakers_show_and_an_admin_weight_edit_is_applied_and_audited(console: Console) -> None:
    body = {"model": "broken", "messages": [{"role": "user", "content": "hi"}]}
    assert (await console.http.post("/v1/chat/completions", json=body, headers=AUTH)).status_code >= 500
    csrf = await console.sign_in("admin")
    page = await console.http.get("/console/routes")
    broken = re.search(r'data-route="broken">(.*?)</section>', page.text, re.S)
    assert broken is not None and "breaker-open" in broken.group(1)
    assert 'class="weights-form"' in page.text

    saved = await console.http.post(
        "/console/routes/split/weights", data={"csrf_token": csrf, "weight_0": "0", "weight_1": "3"}
    )
    assert saved.status_code == 303, saved.text
    assert await console.served_by(8) == Counter({"green": 8})  # blue is only a spare now
    routes = (await console.http.get("/api/registry/routes", headers=AUTH)).json()["data"]
    split = next(r for r in routes if r["name"] == "split")
    assert split["source"] == "applied" and [t["weight"] for t in split["targets"]] == [0.0, 3.0]
    audit = (await console.http.get("/api/audit", headers=AUTH)).json()["data"]
    assert any(a["action"] == "config.applied" for a in audit)
    page = await console.http.get("/console/routes")
    assert re.search(r'name="weight_1"[^>]*value="3"', page.text)

    refused = await console.http.post(
        "/console/routes/split/weights", data={"csrf_token": csrf, "weight_0": "-1", "weight_1": "1"}
    )
    assert refused.status_code == 400 and "weight_0" in refused.text


async def test_a_viewer_sees_no_weight_form_and_a_forged_edit_is_refused(console: Console) -> None:
    csrf = await console.sign_in("viewer")
    page = await console.http.get("/console/routes")
    assert page.status_code == 200 and 'data-route="split"' in page.text and "weights-form" not in page.text
    forged = await console.http.post(
        "/console/routes/split/weights", data={"csrf_token": csrf, "weight_0": "0", "weight_1": "1"}
    )
    assert forged.status_code == 403
    routes = (await console.http.get("/api/registry/routes", headers=AUTH)).json()["data"]
    assert next(r for r in routes if r["name"] == "split")["source"] == "config"
