"""Replays the cross-team traffic attacks against a real ``lmdeck serve``.

The attack: a developer of team ``growth`` starts an experiment on route ``support``, which
team ``support`` owns, with a variant served by a model version of the attacker's (pointing at
a listener the attacker runs), then team support's application sends its requests, with its
prompt's text. Before route ownership the listener received them. Now the attacker's version,
experiment and route variant are refused, the listener (a FAKE OpenAI-compatible upstream)
receives nothing, and team support's own upstream (another fake) answers every request.

Then the cross-team moves: the attacker may not move team support's prompt label or model
alias, nor stop or promote its experiment, nor share its prompt: each is a 404 (team support's
resources do not exist for another team) and nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayProcess, gateway_process, start_fake_upstream

pytestmark = pytest.mark.integration

SECRET = "order 4411 for Ada Lovelace"
PROMPT = {
    "messages": [{"role": "user", "content": "Customer {{ customer }} asks about " + SECRET}],
    "variables": {"customer": "string"},
}


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeUpstreamProcess, FakeUpstreamProcess]]:
    """(team support's upstream, the attacker's listener): two fake upstream processes."""
    logs = tmp_path_factory.mktemp("fakes")
    support = start_fake_upstream(log_dir=logs)
    try:
        listener = start_fake_upstream(log_dir=logs)
        try:
            yield support, listener
        finally:
            listener.stop()
    finally:
        support.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = {
        "default_routes": False,
        "routes": [
            {"name": "support", "team": "support", "targets": ["registry:support-bot@live"]},
            {"name": "growth-route", "team": "growth", "targets": ["registry:growth-bot@live"]},
        ],
    }
    with gateway_process(config, data_dir=tmp_path_factory.mktemp("gw")) as running:
        yield running


class Api:
    """The admin API of the gateway as one key."""

    def __init__(self, gw: GatewayProcess, key: str) -> None:
        self.gw = gw
        self.key = key

    def __call__(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, f"{self.gw.url}{path}", json=body, headers=self.gw.headers(self.key), timeout=15)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self(method, path, body)
        assert response.is_success, (method, path, response.text)
        return response.json() if response.content else None


@pytest.fixture(scope="module")
def keys(gw: GatewayProcess) -> dict[str, str]:
    """Secrets of ``support-developer``, ``support-inference``, ``growth-developer``...; ids under ``...-id``."""
    admin = Api(gw, gw.admin_key)
    out = {}
    for team in ("support", "growth"):
        created = admin.ok("POST", "/api/teams", {"name": team})
        for role in ("developer", "inference"):
            body = {"name": f"{team} {role}", "role": role, "team_id": created["id"]}
            key = admin.ok("POST", "/api/keys", body)
            out[f"{team}-{role}"], out[f"{team}-{role}-id"] = key["key"], key["id"]
    return out


def version_at(fake: FakeUpstreamProcess) -> dict[str, Any]:
    return {"provider": "openai", "model": "fake-model", "base_url": fake.base_url}


def test_another_teams_experiment_cannot_send_a_routes_traffic_to_its_listener(
    gw: GatewayProcess, keys: dict[str, str], upstreams: tuple[FakeUpstreamProcess, FakeUpstreamProcess]
) -> None:
    support_upstream, listener = upstreams
    support, attacker = Api(gw, keys["support-developer"]), Api(gw, keys["growth-developer"])
    support.ok("POST", "/api/registry/models/support-bot/versions", version_at(support_upstream))
    support.ok("PUT", "/api/registry/models/support-bot/aliases/live", {"version": 1})
    support.ok("POST", "/api/registry/prompts/support-reply/versions", PROMPT)
    support.ok("PUT", "/api/registry/prompts/support-reply/labels/live", {"version": 1})
    attacker.ok("POST", "/api/registry/models/growth-bot/versions", version_at(listener))
    attacker.ok("PUT", "/api/registry/models/growth-bot/aliases/live", {"version": 1})
    support_upstream.reset()
    listener.reset()

    # The attacker's own version of team support's model, served through a model variant.
    planted = attacker("POST", "/api/registry/models/support-bot/versions", version_at(listener))
    assert planted.status_code == 409 and planted.json()["error"]["code"] == "name_taken", planted.text
    for variant in ({"model": "support-bot@2"}, {"model": "growth-bot@1"}, {"route": "growth-route"}):
        experiment = {
            "name": "shadow",
            "route": "support",
            "variants": [{"name": "control", "weight": 0.001}, {"name": "mine", "weight": 1000, **variant}],
        }
        refused = attacker("POST", "/api/experiments", experiment)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_route_owner", (
            variant,
            refused.text,
        )

    app = OpenAI(base_url=gw.base_url, api_key=keys["support-inference"], max_retries=0, timeout=15)
    for user in ("ada", "grace", "alan"):
        reply = app.chat.completions.create(
            model="support",
            messages=[],
            user=user,
            extra_body={"prompt": {"name": "support-reply", "label": "live", "variables": {"customer": user}}},
        )
        assert SECRET in (reply.choices[0].message.content or "")
    assert listener.count() == 0 and listener.requests() == []
    assert support_upstream.count() == 3
    assert all(SECRET in r["body"]["messages"][0]["content"] for r in support_upstream.requests())


def test_another_team_cannot_move_labels_aliases_or_experiments(gw: GatewayProcess, keys: dict[str, str]) -> None:
    support, attacker = Api(gw, keys["support-developer"]), Api(gw, keys["growth-developer"])
    support.ok(
        "POST",
        "/api/experiments",
        {
            "name": "support-ab",
            "route": "support",
            "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
        },
    )
    for method, path, body in (
        ("PUT", "/api/registry/prompts/support-reply/labels/live", {"version": 1}),
        ("DELETE", "/api/registry/prompts/support-reply/labels/live", None),
        ("PATCH", "/api/registry/prompts/support-reply", {"visibility": "shared"}),
        ("PUT", "/api/registry/models/support-bot/aliases/live", {"version": 1}),
        ("POST", "/api/registry/models/support-bot/aliases/live/rollback", {}),
        ("POST", "/api/experiments/support-ab/stop", None),
        ("POST", "/api/experiments/support-ab/promote", {"variant": "b"}),
        ("GET", "/api/experiments/support-ab", None),
        ("GET", "/api/registry/prompts/support-reply", None),
    ):
        refused = attacker(method, path, body)
        assert refused.status_code == 404, (method, path, refused.text)
    assert support.ok("GET", "/api/experiments/support-ab")["status"] == "running"
    assert support.ok("GET", "/api/registry/prompts/support-reply")["labels"] == {"live": 1}
    assert support.ok("GET", "/api/registry/prompts/support-reply")["visibility"] == "team"
    history = support.ok("GET", "/api/registry/models/support-bot/history")["data"]
    assert [(h["alias"], h["actor"]) for h in history] == [("live", f"key:{keys['support-developer-id']}")]
    assert support.ok("POST", "/api/experiments/support-ab/stop")["status"] == "stopped"
