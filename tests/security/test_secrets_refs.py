"""Secret references and provider credentials, attacked through a real ``lmdeck serve``.

The attack: a developer registers a model version whose ``base_url`` is their own listener and
whose ``api_key`` is ``{"$env": "LMDECK_ADMIN_KEY"}``, then runs an eval through it. The
listener (a FAKE server that records every byte, :class:`RecordingListener`) must receive
nothing: not the key, not a request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.db import Database
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.registry.versions import VersionStore
from lmdeck.testing.listener import RecordingListener
from lmdeck.testing.servers import (
    TEST_SETTINGS,
    FakeUpstreamProcess,
    GatewayProcess,
    fake_upstream_process,
    gateway_process,
)

pytestmark = pytest.mark.integration

CREDENTIAL_VALUE = "sk-upstream-team-search-7Hq2vK9xLp"


class Deck:
    """The running gateway, the fake upstream, the attacker's listener, and keys of each kind."""

    def __init__(self, gw: GatewayProcess, fake: FakeUpstreamProcess, listener: RecordingListener) -> None:
        self.gw = gw
        self.fake = fake
        self.listener = listener
        self.http = httpx.Client(base_url=gw.url, timeout=30.0)
        self.search_team = self.admin("POST", "/api/teams", json={"name": "search"}).json()["id"]
        self.ads_team = self.admin("POST", "/api/teams", json={"name": "ads"}).json()["id"]
        self.developer = self.key("developer", self.search_team)
        self.other_developer = self.key("developer", self.ads_team)
        # The search team owns the model its routes follow; the ads team has one of its own.
        for name, team in (("bot", "search"), ("ads-bot", "ads")):
            registered = self.admin("POST", "/api/registry/models", json={"name": name, "team": team})
            assert registered.status_code == 201, registered.text

    def key(self, role: str, team_id: str | None = None) -> str:
        body: dict[str, Any] = {"name": f"{role}-{team_id}", "role": role, "team_id": team_id}
        response = self.admin("POST", "/api/keys", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def call(self, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"authorization": f"Bearer {key}"}, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(self.gw.admin_key, method, path, **kwargs)

    def dev(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(self.developer, method, path, **kwargs)

    def assert_listener_untouched(self) -> None:
        assert self.listener.connections == 0, self.listener.received[:500]
        assert self.listener.received == b""


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deck]:
    root = tmp_path_factory.mktemp("secrets-refs")
    with RecordingListener() as listener, fake_upstream_process(log_dir=root) as fake:
        config = {
            **TEST_SETTINGS,
            "registry": {"poll_interval": 0.2},
            "routes": [
                {"name": "support", "targets": ["registry:bot@production"]},
                {"name": "staging", "targets": ["registry:bot@staging"]},
            ],
            "credentials": {
                "search-upstream": {
                    "api_key": {"$env": "LMDECK_TEST_SEARCH_CREDENTIAL"},
                    "hosts": [f"127.0.0.1:{fake.port}"],
                    "teams": ["search"],
                }
            },
        }
        env = {"LMDECK_TEST_SEARCH_CREDENTIAL": CREDENTIAL_VALUE}
        with gateway_process(config, data_dir=root / "gw", env=env) as gw:
            yield Deck(gw, fake, listener)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    return dict(body["error"])


def test_a_developer_cannot_send_the_admin_key_to_their_listener(deck: Deck) -> None:
    attack = {
        "provider": "openai",
        "model": "gpt-4o",
        "base_url": deck.listener.base_url,
        "api_key": {"$env": "LMDECK_ADMIN_KEY"},
    }
    refused = deck.dev("POST", "/api/registry/models/bot/versions", json=attack)
    assert refused.status_code == 403, refused.text
    error = _error(refused)
    assert error["param"] == "api_key" and error["code"] == "secret_ref_forbidden"
    assert "admin" in error["message"]
    listed = deck.admin("GET", "/api/registry/models/bot").json()
    assert all(v.get("base_url") != deck.listener.base_url for v in listed["versions"])

    run = deck.dev(
        "POST",
        "/api/evaluation/runs",
        json={"dataset": "nothing", "route": "support", "model": "bot@99", "evaluators": ["exact"]},
    )
    assert run.status_code in (400, 404), run.text
    deck.assert_listener_untouched()
    assert deck.gw.admin_key.encode() not in deck.listener.received


REFUSED_WRITES = [
    ("POST", "/api/registry/models/bot/versions", {"model": "m", "api_key": {"$secret": "openai-prod"}}, "api_key"),
    ("POST", "/api/registry/models/bot/versions", {"model": "m", "options": {"k": {"$env": "HOME"}}}, "options.k"),
    (
        "POST",
        "/api/registry/prompts/reply/versions",
        {"messages": [{"role": "system", "content": {"$env": "LMDECK_ADMIN_KEY"}}]},
        "messages.0.content",
    ),
    (
        "POST",
        "/api/registry/datasets/tickets/versions",
        {"rows": [{"input": "hi", "expected": {"$secret": "openai-prod"}}]},
        "rows.0.expected",
    ),
    (
        "POST",
        "/api/evaluation/runs",
        {
            "dataset": "tickets",
            "route": "support",
            "evaluators": [{"name": "llm_judge", "options": {"api_key": {"$env": "LMDECK_ADMIN_KEY"}}}],
        },
        "evaluators.0.options.api_key",
    ),
    (
        "POST",
        "/api/experiments",
        {
            "name": "exp",
            "route": "support",
            "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "route": {"$env": "X"}}],
        },
        "variants.1.route",
    ),
    (
        "PUT",
        "/api/evaluation/online/rules/r1",
        {"route": "support", "evaluator": {"name": "llm_judge", "options": {"key": {"$env": "LMDECK_MASTER_KEY"}}}},
        "evaluator.options.key",
    ),
    (
        "POST",
        "/api/registry/apply",
        {
            "models": [
                {
                    "name": "bot",
                    "versions": [{"version": 1, "model": "m", "api_key": {"$env": "LMDECK_ADMIN_KEY"}}],
                }
            ]
        },
        "models.0.versions.0.api_key",
    ),
    ("POST", "/api/feedback", {"trace_id": "t", "score": 1, "metadata": {"x": {"$env": "HOME"}}}, "metadata.x"),
    (
        "POST",
        "/api/releases",
        {"name": "r1", "route": "support", "candidate": {"params": {"api_key": {"$secret": "openai-prod"}}}},
        "candidate.params.api_key",
    ),
    (
        "POST",
        "/api/flags",
        {"name": "f1", "type": "string", "value": {"$secret": "openai-prod"}, "default": "off"},
        "value",
    ),
    (
        "POST",
        "/api/alerts/silences",
        {"matchers": {"route": {"$env": "LMDECK_ADMIN_KEY"}}, "ends_at": "2099-01-01T00:00:00Z"},
        "matchers.route",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "param"), REFUSED_WRITES, ids=[w[3] for w in REFUSED_WRITES])
def test_a_secret_reference_in_any_non_admin_write_is_refused_naming_its_path(
    deck: Deck, method: str, path: str, body: dict[str, Any], param: str
) -> None:
    before = deck.admin("GET", "/api/audit", params={"limit": 1000}).json()
    response = deck.dev(method, path, json=body)
    assert response.status_code == 403, response.text
    error = _error(response)
    assert error["param"] == param and error["code"] == "secret_ref_forbidden", error
    assert error["type"] == "permission_error"
    assert deck.admin("GET", "/api/audit", params={"limit": 1000}).json() == before  # nothing was written
    deck.assert_listener_untouched()


def test_an_admin_may_write_a_reference_and_its_calls_carry_it(deck: Deck) -> None:
    spec = {
        "provider": "openai",
        "model": "fake-model",
        "base_url": deck.fake.base_url,
        "api_key": {"$env": "LMDECK_TEST_SEARCH_CREDENTIAL"},
        "description": "admin-written",
    }
    created = deck.admin("POST", "/api/registry/models/bot/versions", json=spec)
    assert created.status_code == 201, created.text
    deck.admin("PUT", "/api/registry/models/bot/aliases/production", json={"version": created.json()["version"]})
    deck.fake.reset()
    answer = deck.dev(
        "POST", "/v1/chat/completions", json={"model": "support", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert answer.status_code == 200, answer.text
    assert [r["headers"].get("authorization") for r in deck.fake.requests()] == [f"Bearer {CREDENTIAL_VALUE}"]


def test_a_developer_names_an_admin_credential_and_the_gateway_attaches_it(deck: Deck) -> None:
    spec = {
        "provider": "openai",
        "model": "fake-model",
        "base_url": deck.fake.base_url,
        "credential": "search-upstream",
    }
    created = deck.dev("POST", "/api/registry/models/bot/versions", json=spec)
    assert created.status_code == 201, created.text
    assert "api_key" not in created.json() or created.json()["api_key"] is None
    moved = deck.dev("PUT", "/api/registry/models/bot/aliases/staging", json={"version": created.json()["version"]})
    assert moved.status_code == 200, moved.text
    deck.fake.reset()
    answer = deck.dev(
        "POST", "/v1/chat/completions", json={"model": "staging", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert answer.status_code == 200, answer.text
    assert [r["headers"].get("authorization") for r in deck.fake.requests()] == [f"Bearer {CREDENTIAL_VALUE}"]


def test_a_credential_goes_only_to_its_teams_and_hosts(deck: Deck) -> None:
    spec = {
        "provider": "openai",
        "model": "fake-model",
        "base_url": deck.fake.base_url,
        "credential": "search-upstream",
    }
    other_team = deck.call(deck.other_developer, "POST", "/api/registry/models/ads-bot/versions", json=spec)
    assert other_team.status_code == 403, other_team.text
    assert _error(other_team)["param"] == "credential" and _error(other_team)["code"] == "credential_not_allowed"

    to_listener = deck.dev(
        "POST", "/api/registry/models/bot/versions", json={**spec, "base_url": deck.listener.base_url}
    )
    assert to_listener.status_code == 403, to_listener.text
    assert _error(to_listener)["param"] == "credential"

    unknown = deck.dev("POST", "/api/registry/models/bot/versions", json={**spec, "credential": "prod-openai"})
    assert unknown.status_code == 400 and _error(unknown)["code"] == "unknown_credential"
    deck.assert_listener_untouched()


def test_a_stored_version_with_a_developers_own_key_is_never_served_with_it(deck: Deck) -> None:
    """A version written before these rules (straight into the store) by a developer's key: serving refuses it."""
    developer_id = deck.admin("GET", "/api/keys").json()["data"]
    dev_key_id = next(k["id"] for k in developer_id if k["role"] == "developer")
    db = Database(f"sqlite:///{Path(deck.gw.data_dir) / 'lmdeck.db'}")
    try:
        legacy = ModelVersionSpec.model_validate(
            {"model": "gpt-4o", "base_url": deck.listener.base_url, "api_key": {"$env": "LMDECK_ADMIN_KEY"}}
        )
        stored = VersionStore[ModelVersionSpec](db, "model").create("bot", legacy, actor=f"key:{dev_key_id}")
    finally:
        db.dispose()
    deck.dev("POST", "/api/registry/datasets/probe/versions", json={"rows": [{"input": "2+2", "expected": "4"}]})
    # A registry write through the API reloads the gateway's view, the version written behind its back included.
    probe = deck.admin("PUT", "/api/registry/models/bot/aliases/probe", json={"version": stored.version})
    assert probe.status_code == 200, probe.text
    body = {"dataset": "probe", "route": "support", "model": f"bot@{stored.version}", "evaluators": ["exact"]}
    run = deck.dev("POST", "/api/evaluation/runs", json=body)
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]
    deadline = time.monotonic() + 60
    while (state := deck.dev("GET", f"/api/evaluation/runs/{run_id}").json())["status"] == "running":
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    rows = deck.dev("GET", f"/api/evaluation/runs/{run_id}/results").json()["data"]
    assert rows and all(row["error"] and "admin" in row["error"] for row in rows), [r["error"] for r in rows]
    deck.assert_listener_untouched()


def test_the_cli_registers_a_version_naming_a_credential(deck: Deck) -> None:
    from typer.testing import CliRunner

    from lmdeck.cli.main import app

    args = ["models", "add-version", "bot", "--provider", "openai", "--model", "fake-model"]
    args += ["--upstream-url", deck.fake.base_url, "--credential", "search-upstream"]
    added = CliRunner().invoke(app, [*args, "--base-url", deck.gw.url, "--api-key", deck.developer])
    assert added.exit_code == 0, added.output
    latest = deck.admin("GET", "/api/registry/models/bot").json()["versions"][-1]
    assert latest["credential"] == "search-upstream" and latest.get("api_key") is None
    refused = CliRunner().invoke(
        app, [*args[:-1], "prod-openai", "--base-url", deck.gw.url, "--api-key", deck.developer]
    )
    assert refused.exit_code != 0 and "no credential 'prod-openai'" in refused.output
