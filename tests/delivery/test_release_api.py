"""``/api/releases`` in process: the canary split, its stamps, the controller's decisions and the history."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from lmdeck.delivery.runtime import declared_releases
from lmdeck.policy.audit import AuditLog
from lmdeck.settings import ConfigError

from .conftest import Deck


def release(name: str, candidate_route: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "route": "chat",
        "candidate": {"route": candidate_route},
        "strategy": {"steps": [50, 100], "interval_s": 0.001, "min_samples": 10},
        "metrics": [{"name": "error_rate", "tolerance": 0.5}],
        **extra,
    }


async def traffic(deck: Deck, users: int, round_: int = 0) -> Counter[str]:
    seen: Counter[str] = Counter()
    for u in range(users):
        response = await deck.chat(
            model="chat", user=f"user-{u}", messages=[{"role": "user", "content": f"q{u}-{round_}"}]
        )
        seen[response.headers.get("x-lmdeck-release", "none")] += 1
    return seen


async def test_a_healthy_candidate_climbs_every_step_and_is_promoted(deck: Deck) -> None:
    spec = release("next-model", "chat-next")
    spec["candidate"]["params"] = {"temperature": 0.3}
    created = await deck.call("POST", "/api/releases", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["state"] == "pending"
    started = await deck.call("POST", "/api/releases/next-model/start")
    assert started.status_code == 200, started.text
    assert (started.json()["state"], started.json()["percent"]) == ("canary", 50.0)

    seen = await traffic(deck, 60)
    assert set(seen) == {"next-model=baseline", "next-model=candidate"}, seen
    again = await deck.chat(model="chat", user="user-7", messages=[{"role": "user", "content": "again"}])
    first = await deck.chat(model="chat", user="user-7", messages=[{"role": "user", "content": "and again"}])
    assert again.headers["x-lmdeck-release"] == first.headers["x-lmdeck-release"]  # sticky per user
    answer = first.json()["choices"][0]["message"]["content"]
    if first.headers["x-lmdeck-release"].endswith("candidate"):
        assert answer.startswith("next:") and answer.endswith("(temperature 0.3)")  # route and params applied
    else:
        assert answer.startswith("steady:") and answer.endswith("(temperature None)")

    tick = await deck.call("POST", "/api/releases/analyze", json={})
    assert tick.status_code == 200, tick.text
    assert [(d["release"], d["decision"]) for d in tick.json()["data"]] == [("next-model", "promote")]
    assert (await traffic(deck, 30, 1)) == {"next-model=candidate": 30}  # step 100%
    await deck.call("POST", "/api/releases/analyze", json={})
    shown = (await deck.call("GET", "/api/releases/next-model")).json()
    assert shown["state"] == "promoted"
    assert [e["action"] for e in shown["history"]] == ["started", "step", "promoted"]
    evidence = shown["history"][1]["evidence"]["analysis"]
    assert evidence["decision"] == "promote" and evidence["metrics"][0]["name"] == "error_rate"
    assert evidence["candidate_requests"] >= 10 and evidence["baseline_requests"] >= 10
    # A route candidate has no registry pointer: the promoted release keeps serving it.
    assert (await traffic(deck, 5, 2)) == {"next-model=candidate": 5}
    metrics = (await deck.client.get("/metrics")).text
    assert 'lmdeck_release_requests_total{release="next-model",status_class="2xx",variant="candidate"}' in metrics


async def test_a_failing_candidate_is_rolled_back_at_the_first_analysis(deck: Deck) -> None:
    spec = release("flaky", "chat-flaky", hard_guards=[{"metric": "error_rate", "ceiling": 0.1, "min_samples": 10}])
    assert (await deck.call("POST", "/api/releases", json=spec)).status_code == 201
    await deck.call("POST", "/api/releases/flaky/start")
    seen = await traffic(deck, 80)
    assert set(seen) == {"flaky=baseline", "flaky=candidate"}, seen  # failed answers name their variant too
    tick = (await deck.call("POST", "/api/releases/analyze", json={})).json()["data"]
    assert [(d["release"], d["decision"], d["state"]) for d in tick] == [("flaky", "rollback", "rolled_back")]
    assert tick[0]["reason"].startswith("hard guard: candidate error_rate")
    assert (await traffic(deck, 10, 1)) == {"none": 10}  # the candidate serves nothing any more
    audit = AuditLog(deck.gateway.db).entries(target="release:flaky")
    assert [e.action for e in audit] == ["release.created", "release.started", "release.rolled_back"]
    assert "hard guard" in str(audit[-1].after)


async def test_permissions_and_bad_input(deck: Deck) -> None:
    assert (await deck.call("POST", "/api/releases", who="viewer", json=release("x", "chat-next"))).status_code == 403
    bad = await deck.call("POST", "/api/releases", json={**release("x", "chat-next"), "strategy": {"steps": [10]}})
    assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}
    missing = await deck.call("POST", "/api/releases", json=release("x", "nowhere"))
    assert missing.status_code == 404 and "no route 'nowhere'" in missing.json()["error"]["message"]
    assert (await deck.call("POST", "/api/releases/absent/start")).status_code == 404
    await deck.call("POST", "/api/releases", json=release("x", "chat-next"))
    assert (await deck.call("POST", "/api/releases/x/promote")).status_code == 409  # pending: start it first
    assert (await deck.call("POST", "/api/releases/x/rollout")).status_code == 404
    assert (await deck.call("POST", "/api/releases/analyze", who="developer", json={})).status_code == 403
    unknown = await deck.call("GET", "/api/releases", params={"state": "zzz"})  # refused by name, not an empty list
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "state"), unknown.text
    assert (await deck.call("GET", "/api/releases", params={"state": "pending"})).json()["data"][0][
        "state"
    ] == "pending"


async def test_a_release_declared_in_the_config_file_is_created_and_started(
    release_settings: Any, start_deck: Any
) -> None:
    settings = release_settings(releases=[release("declared", "chat-next")])
    async with start_deck(settings) as running:
        shown = (await running.call("GET", "/api/releases/declared")).json()
        assert (shown["state"], shown["created_by"]) == ("canary", "key:config")
        assert [e["action"] for e in shown["history"]] == ["started"]
    # Started again on the same store, the declared release is left as it is.
    async with start_deck(settings) as again:
        assert (await again.call("GET", "/api/releases/declared")).json()["state"] == "canary"


def test_a_bad_declared_release_names_its_field() -> None:
    with pytest.raises(ConfigError, match=r"releases\[0\]\.strategy\.steps"):
        declared_releases([release("x", "chat-next", strategy={"steps": [5, 50]})])


async def test_promotion_moves_the_model_alias_and_an_alert_rollback_moves_it_back(deck: Deck) -> None:
    assert (await deck.call("POST", "/api/registry/models", json={"name": "bot"})).status_code == 201
    for model in ("steady", "next"):
        r = await deck.call("POST", "/api/registry/models/bot/versions", json={"provider": "echo", "model": model})
        assert r.status_code == 201, r.text
    assert (
        await deck.call("PUT", "/api/registry/models/bot/aliases/production", json={"version": 1})
    ).status_code == 200
    spec = {**release("bot-v2", "unused"), "route": "support", "candidate": {"model": "bot@2"}}
    assert (await deck.call("POST", "/api/releases", json=spec)).status_code == 201
    started = (await deck.call("POST", "/api/releases/bot-v2/start")).json()
    assert started["baseline"]["model_version"] == 1

    async def served(users: int, round_: int) -> Counter[str]:
        seen: Counter[str] = Counter()
        for u in range(users):
            r = await deck.chat(model="support", user=f"u{u}", messages=[{"role": "user", "content": f"{round_}-{u}"}])
            seen[r.json()["choices"][0]["message"]["content"].split(":")[0]] += 1
        return seen

    assert set(await served(40, 0)) == {"steady", "next"}
    for round_ in (1, 2):
        await deck.call("POST", "/api/releases/analyze", json={})
        await served(20, round_)
    await deck.call("POST", "/api/releases/analyze", json={})
    promoted = (await deck.call("GET", "/api/releases/bot-v2")).json()
    assert promoted["state"] == "promoted", promoted["last_analysis"]
    aliases = (await deck.call("GET", "/api/registry/models/bot")).json()["aliases"]
    assert aliases["production"] == 2
    assert await served(5, 3) == {"next": 5}  # the alias carries the candidate now, no release needed

    # What an alert action calls: the exact previous bundle comes back, audited.
    await deck.gateway.delivery.releases.rollback("bot-v2", "quality alert fired", actor="alert:quality")  # type: ignore[union-attr]
    assert (await deck.call("GET", "/api/registry/models/bot")).json()["aliases"]["production"] == 1
    assert await served(5, 4) == {"steady": 5}
    history = (await deck.call("GET", "/api/releases/bot-v2")).json()["history"]
    restored = history[-1]["evidence"]["restored"]
    assert (history[-1]["action"], restored[0]["to_version"]) == ("rolled_back", 1)


async def test_a_developer_may_not_release_another_teams_model_alias_through_own_route(
    release_settings: Any, start_deck: Any
) -> None:
    # The controller promotes as lmdeck itself, so the creator's right to move the alias is checked at creation.
    routes = release_settings().model_dump(mode="json")["routes"]
    settings = release_settings(routes=[*routes, {"name": "beta-chat", "team": "beta", "targets": ["echo:steady"]}])
    async with start_deck(settings) as deck:
        for team in ("alpha", "beta"):
            assert (await deck.call("POST", "/api/teams", json={"name": team})).status_code == 201
        made = await deck.call("POST", "/api/keys", json={"name": "beta dev", "role": "developer", "team_id": "beta"})
        assert made.status_code == 201, made.text
        deck.keys["beta"] = made.json()["key"]
        assert (
            await deck.call("POST", "/api/registry/models", json={"name": "bot", "team": "alpha"})
        ).status_code == 201
        for model in ("steady", "next"):
            r = await deck.call("POST", "/api/registry/models/bot/versions", json={"provider": "echo", "model": model})
            assert r.status_code == 201, r.text
        await deck.call("PUT", "/api/registry/models/bot/aliases/production", json={"version": 1})

        spec = {**release("steal", "unused"), "route": "beta-chat", "candidate": {"model": "bot@2"}}
        refused = await deck.call("POST", "/api/releases", who="beta", json=spec)
        assert refused.status_code in (403, 404), refused.text
        assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
        assert (await deck.call("GET", "/api/releases/steal")).status_code == 404
        assert (await deck.call("GET", "/api/registry/models/bot")).json()["aliases"]["production"] == 1
