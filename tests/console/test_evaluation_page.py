"""The console's evaluation page, in process: runs with their intervals, a comparison of two runs with
the changed rows, and an experiment with its variants, chart data and verdict.

``ParityFake`` is a FAKE provider for tests: it never calls anything. Model ``always`` answers "yes";
model ``parity`` answers "yes" to an even number in the last user message and "no" to an odd one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
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
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_CONSOLE_EVAL_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-console-eval-Pl0Ok9Ij8Uh7Yg6Tf5Rd4Es3Wa2"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


class ParityFake:
    """A fake provider for tests (see the module docstring)."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        last = request.messages[-1].text()
        odd = int(re.sub(r"\D", "", last) or 0) % 2 == 1
        answer = "no" if self.target.model == "parity" and odd else "yes"
        return ChatCompletionResponse.model_validate(
            {
                "id": "chatcmpl-fake",
                "created": int(time.time()),
                "model": self.target.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
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
    runs: dict[str, str]

    async def sign_in(self, role: str) -> None:
        self.http.cookies.clear()
        form = await self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"csrf_token": token.group(1), "api_key": self.keys[role], "next": "/console/evaluation"}
        assert (await self.http.post("/console/login", data=data)).status_code == 303


async def run_to_end(http: httpx.AsyncClient, **body: Any) -> str:
    started = await http.post("/api/evaluation/runs", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    deadline = time.monotonic() + 120  # generous: a loaded machine only makes the wait longer
    while True:
        run = (await http.get(f"/api/evaluation/runs/{run_id}", headers=AUTH)).json()
        if run["status"] != "running":
            assert run["status"] == "succeeded", run
            return run_id
        assert time.monotonic() < deadline, "the eval run did not finish"
        await asyncio.sleep(0.02)


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "routes": [
                {"name": "always", "targets": [{"provider": "fake", "model": "always"}]},
                {"name": "parity", "targets": [{"provider": "fake", "model": "parity"}]},
            ],
        }
    )
    providers = ProviderRegistry()
    providers.add("fake", ParityFake)
    gateway = build_gateway(settings, providers=providers, sink=MemoryTraceSink(), announce_admin_key=False)
    app = create_app(settings, gateway=gateway)
    install_console(app, settings)
    async with in_process_client(app, timeout=30) as http:
        keys = {"admin": ADMIN_KEY}
        _, keys["viewer"] = gateway.policy.identities.create_key("console viewer", "viewer")
        gateway.policy.keys.load()
        prompt = {"text": "Is {{ n }} fine?", "variables": {"n": "integer"}}
        assert (await http.post("/api/registry/prompts/ask/versions", json=prompt, headers=AUTH)).status_code == 201
        rows = [{"input": {"n": n}, "expected": "yes"} for n in range(10)]
        made = await http.post("/api/registry/datasets/numbers/versions", json={"rows": rows}, headers=AUTH)
        assert made.status_code in (200, 201), made.text
        common = {"dataset": "numbers@1", "prompt": "ask@1", "evaluators": ["exact"]}
        runs = {
            "always": await run_to_end(http, route="always", name="always", **common),
            "parity": await run_to_end(http, route="parity", name="parity", **common),
        }
        yield Console(http, keys, runs)


async def test_runs_show_scores_with_intervals_and_a_comparison_lists_the_changed_rows(console: Console) -> None:
    await console.sign_in("viewer")
    index = await console.http.get("/console/evaluation")
    assert index.status_code == 200
    row = re.search(rf'<tr data-run="{console.runs["parity"]}">(.*?)</tr>', index.text, re.S)
    assert row is not None and re.search(r"exact 0\.500 \[[0-9.]+, [0-9.]+\]", row.group(1)), row

    run = await console.http.get(f"/console/evaluation/runs/{console.runs['always']}")
    assert re.search(r'<tr data-evaluator="exact"><td>exact</td><td>1\.0000</td>', run.text)

    params = {"a": console.runs["always"], "b": console.runs["parity"]}
    compared = await console.http.get("/console/evaluation/compare", params=params)
    assert compared.status_code == 200
    assert re.search(r'<tr data-evaluator="exact">.*?<td>-0\.5000', compared.text, re.S)
    changed = re.findall(r'<tr class="changed-row"><td>(\d+)</td>', compared.text)
    assert sorted(int(i) for i in changed) == [1, 3, 5, 7, 9]
    unknown = await console.http.get("/console/evaluation/compare", params={**params, "b": "run_missing"})
    assert unknown.status_code == 404


async def test_an_experiment_shows_its_variants_chart_data_and_verdict(console: Console) -> None:
    spec = {
        "name": "parity-vs-always",
        "route": "always",
        "variants": [{"name": "control", "weight": 1}, {"name": "parity", "weight": 1, "route": "parity"}],
    }
    created = await console.http.post("/api/experiments", json=spec, headers=AUTH)
    assert created.status_code == 201, created.text
    for user in range(12):
        body = {"model": "always", "user": f"u{user}", "messages": [{"role": "user", "content": str(user)}]}
        assert (await console.http.post("/v1/chat/completions", json=body, headers=AUTH)).status_code == 200
    await console.sign_in("viewer")
    page = await console.http.get("/console/evaluation/experiments/parity-vs-always")
    assert page.status_code == 200
    assert {"control", "parity"} == set(re.findall(r'<tr data-variant="(\w+)">', page.text))
    chart = re.search(r'<script type="application/json" class="variant-series">(.*?)</script>', page.text, re.S)
    assert chart is not None
    series = json.loads(chart.group(1))
    assert series["names"] == ["control", "parity"] and series["x"] == [0, 1]
    shown = (await console.http.get("/api/experiments/parity-vs-always", headers=AUTH)).json()
    assert f'id="verdict-status">{shown["verdict"]["status"]}<' in page.text
    assert sum(v["requests"] for v in shown["variants"]) == 12
