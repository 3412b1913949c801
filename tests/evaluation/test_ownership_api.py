"""Teams own experiments and online rules; an experiment needs the permission to move its route's
traffic, and its variants may serve only what the route's owner may use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from lmdeck.settings import Settings

from .conftest import Deck

TEAM_ROUTES = [
    {"name": "blue-calc", "team": "blue", "targets": [{"provider": "arith", "model": "careful"}]},
    {"name": "blue-alt", "team": "team_blue", "targets": [{"provider": "arith", "model": "careless"}]},
    {"name": "red-calc", "team": "red", "targets": [{"provider": "arith", "model": "careless"}]},
    {"name": "blue-bots", "team": "blue", "targets": ["registry:blue-bot@production"]},
]


@pytest.fixture
async def teams(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    """The evaluation deck plus routes owned by team blue (``blue-calc``, ``blue-alt``, ``blue-bots``) and red."""
    settings = make_settings()
    routes = [*(r.model_dump(mode="json", by_alias=True) for r in settings.routes), *TEAM_ROUTES]
    async with start_deck(make_settings(routes=routes)) as deck:
        policy = deck.gateway.policy
        for team in ("blue", "red"):
            _, deck.keys[f"{team}-viewer"] = policy.identities.create_key(
                f"{team} viewer", "viewer", team_id=f"team_{team}"
            )
        policy.keys.load()
        yield deck


def experiment(name: str, on: str, **variant: Any) -> dict[str, Any]:
    return {
        "name": name,
        "route": on,
        "variants": [{"name": "control", "weight": 1}, {"name": "b", "weight": 1, **variant}],
    }


async def test_an_experiment_needs_the_routes_owner_and_belongs_to_its_team(teams: Deck) -> None:
    created = await teams.call("POST", "/api/experiments", json=experiment("blue-exp", "blue-calc"), who="blue-dev")
    assert created.status_code == 201 and created.json()["team_id"] == "team_blue", created.text
    for name, route, variant, who in (
        ("red-on-blue", "blue-calc", {}, "red-dev"),
        ("blue-on-admins", "calc", {}, "blue-dev"),
        ("blue-on-default", "support", {}, "blue-dev"),
        ("blue-to-red", "blue-alt", {"route": "red-calc"}, "blue-dev"),
    ):
        r = await teams.call("POST", "/api/experiments", json=experiment(name, route, **variant), who=who)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_route_owner", (name, r.text)
    to_admins = await teams.call(
        "POST", "/api/experiments", json=experiment("ok", "blue-alt", route="calc"), who="blue-dev"
    )
    assert to_admins.status_code == 201, to_admins.text
    missing = await teams.call("POST", "/api/experiments", json=experiment("nowhere", "no-route"), who="blue-dev")
    assert missing.status_code == 404

    # Another team neither sees nor stops it (the regression: it could stop it).
    for path, method in (("blue-exp", "GET"), ("blue-exp/stop", "POST"), ("blue-exp/promote", "POST")):
        r = await teams.call(method, f"/api/experiments/{path}", json={} if method == "POST" else None, who="red-dev")
        assert r.status_code == 404, (path, r.text)
    listed = (await teams.call("GET", "/api/experiments", who="red-viewer")).json()["data"]
    assert "blue-exp" not in [e["name"] for e in listed]
    assert (await teams.call("GET", "/api/experiments/blue-exp", who="blue-viewer")).status_code == 200
    shared = await teams.call("PATCH", "/api/experiments/blue-exp", json={"visibility": "shared"}, who="blue-dev")
    assert shared.status_code == 200 and shared.json()["visibility"] == "shared", shared.text
    assert (await teams.call("GET", "/api/experiments/blue-exp", who="red-viewer")).status_code == 200
    assert (await teams.call("POST", "/api/experiments/blue-exp/stop", who="red-dev")).status_code == 403
    stopped = await teams.call("POST", "/api/experiments/blue-exp/stop", who="blue-dev")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"


async def test_the_routes_team_sees_and_stops_an_admins_experiment_on_its_route(teams: Deck) -> None:
    # Even an admin may not send route blue-calc's traffic to a route of another team.
    refused = await teams.call("POST", "/api/experiments", json=experiment("by-admin", "blue-calc", route="red-calc"))
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "variants"
    made = await teams.call("POST", "/api/experiments", json=experiment("by-admin", "blue-calc", route="calc"))
    assert made.status_code == 201 and made.json()["team_id"] is None
    assert (await teams.call("GET", "/api/experiments/by-admin", who="blue-viewer")).status_code == 200
    assert (await teams.call("GET", "/api/experiments/by-admin", who="red-viewer")).status_code == 404
    assert (await teams.call("POST", "/api/experiments/by-admin/stop", who="blue-viewer")).status_code == 403
    assert (await teams.call("POST", "/api/experiments/by-admin/stop", who="blue-dev")).status_code == 200
    for_red = await teams.call("POST", "/api/experiments", json={**experiment("for-red", "red-calc"), "team": "red"})
    assert for_red.status_code == 201 and for_red.json()["team_id"] == "team_red"


async def test_variants_serve_only_models_the_routes_owner_may_use(teams: Deck) -> None:
    for who, model in (("blue-dev", "blue-bot"), ("red-dev", "red-bot")):
        r = await teams.call(
            "POST", f"/api/registry/models/{model}/versions", json={"provider": "arith", "model": "careful"}, who=who
        )
        assert r.status_code == 201, r.text
    mine = await teams.call(
        "POST", "/api/experiments", json=experiment("own", "blue-bots", model="blue-bot@1"), who="blue-dev"
    )
    assert mine.status_code == 201, mine.text
    await teams.call("POST", "/api/experiments/own/stop", who="blue-dev")
    hidden = await teams.call(
        "POST", "/api/experiments", json=experiment("theirs", "blue-bots", model="red-bot@1"), who="blue-dev"
    )
    assert hidden.status_code == 404 and "red-bot" in hidden.json()["error"]["message"], hidden.text
    # An admin may read red-bot, but route blue-bots' owner may not use it.
    by_admin = await teams.call("POST", "/api/experiments", json=experiment("theirs", "blue-bots", model="red-bot@1"))
    assert by_admin.status_code == 403 and by_admin.json()["error"]["param"] == "variants", by_admin.text
    await teams.call("PATCH", "/api/registry/models/red-bot", json={"visibility": "shared"}, who="red-dev")
    shared = await teams.call(
        "POST", "/api/experiments", json=experiment("theirs", "blue-bots", model="red-bot@1"), who="blue-dev"
    )
    assert shared.status_code == 201, shared.text


async def test_a_prompt_experiment_needs_the_prompt_and_changes_only_its_version(teams: Deck) -> None:
    spec = {
        "messages": [{"role": "user", "content": "What is {{a}} + {{b}}?"}],
        "variables": {"a": "integer", "b": "integer"},
    }
    for _ in range(2):
        assert (
            await teams.call("POST", "/api/registry/prompts/adder/versions", json=spec, who="blue-dev")
        ).status_code == 201
    variants = [{"name": "v1", "weight": 1, "prompt_version": 1}, {"name": "v2", "weight": 1, "prompt_version": 2}]
    body = {"name": "wording", "prompt": "adder", "label": "staging", "variants": variants}
    assert (await teams.call("POST", "/api/experiments", json=body, who="red-dev")).status_code == 404
    rerouted = {**body, "variants": [variants[0], {**variants[1], "route": "blue-calc"}]}
    refused = await teams.call("POST", "/api/experiments", json=rerouted, who="blue-dev")
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "variants"
    assert (await teams.call("POST", "/api/experiments", json=body, who="blue-dev")).status_code == 201


async def test_online_rules_belong_to_their_team_and_score_only_its_traces(teams: Deck) -> None:
    rule = {"sample_rate": 1, "evaluators": ["regex:pattern=^\\d+$&full=true"]}
    made = await teams.call("PUT", "/api/evaluation/online/rules/blue-numbers", json=rule, who="blue-dev")
    assert made.status_code == 200 and made.json()["team_id"] == "team_blue", made.text
    for who, answer_to in (("blue-app", "1 + 1"), ("red-app", "2 + 2")):
        r = await teams.chat(who, model="calc", messages=[{"role": "user", "content": f"What is {answer_to}?"}])
        assert r.status_code == 200
    await teams.evaluation.online.queue.join()
    scores = (await teams.call("GET", "/api/evaluation/online/scores")).json()["data"]
    teams_scored = {t.team_id for t in teams.gateway.sink.records if t.id in {s["trace_id"] for s in scores}}  # type: ignore[attr-defined]
    assert teams_scored == {"team_blue"}, scores
    # Another team: not listed, not replaced, not deleted, not shared.
    listed = (await teams.call("GET", "/api/evaluation/online/rules", who="red-viewer")).json()["data"]
    assert "blue-numbers" not in [r["name"] for r in listed]
    taken = await teams.call("PUT", "/api/evaluation/online/rules/blue-numbers", json=rule, who="red-dev")
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"
    assert (await teams.call("DELETE", "/api/evaluation/online/rules/blue-numbers", who="red-dev")).status_code == 404
    patch = {"visibility": "shared"}
    assert (
        await teams.call("PATCH", "/api/evaluation/online/rules/blue-numbers", json=patch, who="red-dev")
    ).status_code == 404
    assert (
        await teams.call("PATCH", "/api/evaluation/online/rules/blue-numbers", json=patch, who="blue-dev")
    ).status_code == 200
    assert "blue-numbers" in [
        r["name"] for r in (await teams.call("GET", "/api/evaluation/online/rules", who="red-viewer")).json()["data"]
    ]
    assert (await teams.call("DELETE", "/api/evaluation/online/rules/blue-numbers", who="red-dev")).status_code == 403
    assert (await teams.call("DELETE", "/api/evaluation/online/rules/blue-numbers", who="blue-dev")).status_code == 204


async def test_a_config_rule_is_overridden_by_admins_only(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> None:
    declared = {"name": "everyone", "sample_rate": 1, "evaluators": ["exact"]}
    async with start_deck(make_settings(evaluation={"online_rules": [declared]})) as deck:
        rules = (await deck.call("GET", "/api/evaluation/online/rules", who="blue-dev")).json()["data"]
        assert [(r["name"], r["source"]) for r in rules] == [("everyone", "config")]
        body = {"sample_rate": 0, "evaluators": ["exact"]}
        refused = await deck.call("PUT", "/api/evaluation/online/rules/everyone", json=body, who="blue-dev")
        assert refused.status_code == 403, refused.text
        assert (await deck.call("PUT", "/api/evaluation/online/rules/everyone", json=body)).status_code == 200
