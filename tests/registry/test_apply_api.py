"""``/api/registry/apply``: plan, apply, idempotence, live routes, and who may apply what."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Deck

DOC: dict[str, Any] = {
    "routes": [
        {"name": "support", "targets": ["registry:support-bot@production"]},
        {"name": "assistant", "targets": [{"provider": "fake", "model": "assistant-model"}], "fallbacks": ["plain"]},
    ],
    "models": [
        {
            "name": "support-bot",
            "description": "answers support tickets",
            "versions": [
                {"version": 1, "provider": "fake", "model": "m-1"},
                {"version": 2, "provider": "fake", "model": "m-2", "lineage": {"parent_version": 1}},
            ],
            "aliases": {"production": 1, "staging": 2},
        }
    ],
    "prompts": [
        {
            "name": "greet",
            "versions": [
                {"version": 1, "text": "Hello {{ name }}", "variables": {"name": "string"}, "route": "support"}
            ],
            "labels": {"production": 1},
        }
    ],
}


async def apply(deck: Deck, doc: dict[str, Any], role: str = "admin", **flags: Any) -> Any:
    return await deck.client.post("/api/registry/apply", json={**doc, **flags}, headers=deck.auth(role))


async def test_plan_apply_and_second_run_is_no_changes(deck: Deck) -> None:
    plan = (await apply(deck, DOC, dry_run=True)).json()
    assert plan["applied"] is False and plan["dry_run"] is True
    assert [c["description"] for c in plan["changes"]] == [
        "+ route assistant",
        "+ model support-bot",
        "+ model version support-bot v1",
        "+ model version support-bot v2",
        "→ alias support-bot@production: unset → v1",
        "→ alias support-bot@staging: unset → v2",
        "+ prompt greet",
        "+ prompt version greet v1",
        "→ label greet@production: unset → v1",
    ]
    unchanged = await deck.client.get("/api/registry/models", headers=deck.auth("viewer"))
    assert unchanged.json()["data"] == []

    applied = (await apply(deck, DOC)).json()
    assert applied["applied"] is True and applied["changes"] == plan["changes"]
    again = (await apply(deck, DOC)).json()
    assert again["applied"] is False and again["summary"] == "no changes" and again["changes"] == []

    r = await deck.chat(model="assistant", messages=[{"role": "user", "content": "hi"}])
    assert json.loads(r.json()["choices"][0]["message"]["content"])["model"] == "assistant-model"
    r = await deck.chat(prompt={"name": "greet", "variables": {"name": "Ada"}})
    seen = json.loads(r.json()["choices"][0]["message"]["content"])
    assert seen["model"] == "m-1" and seen["messages"] == [{"role": "user", "content": "Hello Ada"}]
    routes = (await deck.client.get("/api/registry/routes", headers=deck.auth("viewer"))).json()["data"]
    assert {r["name"]: r["source"] for r in routes} == {"assistant": "applied", "plain": "config", "support": "config"}
    history = (await deck.client.get("/api/registry/models/support-bot/history", headers=deck.auth("viewer"))).json()
    assert {h["action"] for h in history["data"]} == {"apply"}


async def test_a_changed_file_plans_exactly_its_change(deck: Deck) -> None:
    await apply(deck, DOC)
    changed = json.loads(json.dumps(DOC))
    changed["models"][0]["aliases"]["production"] = 2
    changed["routes"][1]["targets"][0]["timeout"] = 5
    plan = (await apply(deck, changed, dry_run=True)).json()
    assert [c["description"] for c in plan["changes"]] == [
        "~ route assistant (targets changed)",
        "→ alias support-bot@production: v1 → v2",
    ]
    assert all(c["needs_admin"] for c in plan["changes"])
    forbidden = await apply(deck, changed, role="developer")
    assert forbidden.status_code == 403 and "route assistant" in forbidden.json()["error"]["message"]
    assert (await apply(deck, changed)).json()["summary"] == "1 to move, 1 to update"
    r = await deck.chat(model="support", messages=[{"role": "user", "content": "x"}])
    assert json.loads(r.json()["choices"][0]["message"]["content"])["model"] == "m-2"


async def test_developer_may_apply_unprotected_changes(deck: Deck) -> None:
    doc = {"prompts": DOC["prompts"]}
    doc["prompts"] = [{**DOC["prompts"][0], "labels": {"staging": 1}}]
    r = await apply(deck, doc, role="developer")
    assert r.status_code == 200 and r.json()["applied"]
    assert (await apply(deck, doc, role="viewer")).status_code == 403


async def test_immutable_versions_and_unknown_providers_are_refused(deck: Deck) -> None:
    await apply(deck, DOC)
    rewritten = json.loads(json.dumps(DOC))
    rewritten["models"][0]["versions"][0]["model"] = "m-1-rewritten"
    r = await apply(deck, rewritten)
    assert r.status_code == 409 and "immutable" in r.json()["error"]["message"]
    bad_provider = {"routes": [{"name": "x", "targets": [{"provider": "nope", "model": "y"}]}]}
    assert (await apply(deck, bad_provider)).status_code == 400
    bad_ref = {"routes": [{"name": "x", "targets": ["registry:support-bot"]}]}
    assert (await apply(deck, bad_ref)).status_code == 400
    assert (await apply(deck, {"routes": [{"name": "x"}]})).status_code == 400
    unknown_fallback = {"routes": [{"name": "x", "targets": ["fake:m"], "fallbacks": ["nowhere"]}]}
    assert (await apply(deck, unknown_fallback)).status_code == 400


async def test_prune_removes_what_the_file_no_longer_declares(deck: Deck) -> None:
    await apply(deck, DOC)
    smaller = json.loads(json.dumps(DOC))
    smaller["routes"] = smaller["routes"][:1]
    del smaller["models"][0]["aliases"]["staging"]
    assert (await apply(deck, smaller, dry_run=True)).json()["changes"] == []
    plan = (await apply(deck, smaller, prune=True)).json()
    assert [c["description"] for c in plan["changes"]] == ["- route assistant", "- alias support-bot@staging (was v2)"]
    r = await deck.chat(model="assistant", messages=[{"role": "user", "content": "hi"}])
    assert r.status_code == 404


async def test_apply_holds_to_the_plan_that_was_shown(deck: Deck) -> None:
    shown = (await apply(deck, DOC, dry_run=True)).json()
    await deck.client.post(
        "/api/registry/models/support-bot/versions", json={"provider": "fake", "model": "m-1"}, headers=deck.auth()
    )
    stale = await apply(deck, DOC, plan_hash=shown["plan_hash"])
    assert stale.status_code == 409 and "run `lmdeck apply` again" in stale.json()["error"]["message"]
    fresh = (await apply(deck, DOC, dry_run=True)).json()
    assert fresh["plan_hash"] != shown["plan_hash"]
