"""``/api/drift/report`` in process: the report's shape, who may ask, team scoping, bad parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.factory import create_app
from lmdeck.pipeline.principal import Principal
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.testing.skill_traffic import skill_traces
from lmdeck.tracing.sql_store import SQLTraceStore

ADMIN_KEY = "sk-lmdeck-drift-Ue3Kx8Ra5Ym1Qw7Bn4Gt9Zc2Hv6Lp0J"
NOW = 1_800_000_000.0
DAY = 86400.0
PRINCIPALS = {
    "sk-viewer-a": Principal(key_id="ka", role="viewer", team_id="team-a"),
    "sk-dev-b": Principal(key_id="kb", role="developer", team_id="team-b"),
}
UPSTREAM = {
    "provider": "openai",
    "model": "m",
    "base_url": "http://127.0.0.1:9/v1",
    "api_key": {"$env": "LMDECK_TEST_DRIFT_UPSTREAM_KEY"},
}


class TableAuthenticator:
    """Keys of the test principals, then whatever the gateway already accepts."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    async def authenticate(self, token: str) -> Principal | None:
        return PRINCIPALS.get(token) or await self.fallback.authenticate(token)


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("LMDECK_TEST_DRIFT_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("LMDECK_TEST_DRIFT_UPSTREAM_KEY", "sk-upstream-fake")
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": "LMDECK_TEST_DRIFT_ADMIN_KEY"},
            "routes": [
                {"name": "support", "team": "team-a", "targets": [UPSTREAM]},
                {"name": "ops", "targets": [UPSTREAM]},
            ],
        }
    )
    app = create_app(settings)
    gateway = app.state.gateway
    gateway.authenticator = TableAuthenticator(gateway.authenticator)
    gateway.drift.monitor.embed = None  # the input tests skip: this module checks the API, not MiniLM
    store = SQLTraceStore(gateway.db)
    for team, seed in (("team-a", 1), ("team-b", 3)):
        # team-a's answers get three times longer in the current window; team-b's stay the same.
        current = {"extract": 1.0} if team == "team-a" else {"add": 1.0}
        store.insert(
            skill_traces("support", {"add": 1.0}, 60, since=NOW - 8 * DAY, until=NOW - DAY, seed=seed, team_id=team)
        )
        store.insert(skill_traces("support", current, 60, since=NOW - DAY, until=NOW, seed=seed + 1, team_id=team))
    async with in_process_client(app, timeout=60.0) as http:
        yield http


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_admin_report_reads_every_team(client: httpx.AsyncClient) -> None:
    params = {"route": "support", "reference": "7d", "current": "1d", "until": NOW}
    response = await client.get("/api/drift/report", params=params, headers=auth(ADMIN_KEY))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "drift.report" and body["verdict"] == "drift"
    assert body["reference"]["total"] == body["current"]["total"] == 120
    tests = {t["name"]: t for t in body["tests"]}
    assert tests["output_length"]["drift"] and tests["output_length"]["p_value"] < 0.01
    assert tests["input_mmd"]["skipped"].startswith("no embedding model")
    assert body["max_samples"] == 500 and any("at most 500 traces" in n for n in body["notes"])


async def test_the_routes_team_sees_only_its_traces(client: httpx.AsyncClient) -> None:
    params = {"route": "support", "until": NOW, "tests": "output_length"}
    response = await client.get("/api/drift/report", params=params, headers=auth("sk-viewer-a"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["current"]["total"] == 60 and body["verdict"] == "drift"
    # Another team may not ask about a route it does not own; nor about a route only admins own.
    other = await client.get("/api/drift/report", params=params, headers=auth("sk-dev-b"))
    assert other.status_code == 403 and other.json()["error"]["code"] == "not_route_owner"
    admins = await client.get("/api/drift/report", params={"route": "ops"}, headers=auth("sk-viewer-a"))
    assert admins.status_code == 403


#: (parameters, status, the parameter the error names)
BAD: list[tuple[dict[str, Any], int, str | None]] = [
    ({"route": "nope"}, 404, "route"),
    ({"route": "support", "reference": "7 parsecs"}, 400, "reference"),
    ({"route": "support", "current": "0d"}, 400, "current"),
    ({"route": "support", "until": "yesterday"}, 400, "until"),
    ({"route": "support", "tests": "input_mmd,nope"}, 400, "tests"),
    ({"route": "support", "max_samples": 5}, 400, None),
]


async def test_bad_parameters_are_4xx_naming_them(client: httpx.AsyncClient) -> None:
    for params, status, param in BAD:
        response = await client.get("/api/drift/report", params=params, headers=auth(ADMIN_KEY))
        assert response.status_code == status, (params, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        if param is not None:
            assert error["param"] == param, (params, error)
