"""Teams own prompts, models and datasets: what another team sees (404), shares (read only) and
may never do (move the labels, aliases or traffic of a team it is not)."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Deck

PROMPT = {
    "messages": [{"role": "user", "content": "Customer {{ customer }} asks: {{ question }}"}],
    "variables": {"customer": "string", "question": "string"},
    "route": "plain",
}


async def call(deck: Deck, method: str, path: str, who: str, body: Any = None) -> Any:
    return await deck.client.request(method, path, json=body, headers=deck.auth(who))


async def blue_prompt(deck: Deck) -> None:
    r = await call(deck, "POST", "/api/registry/prompts", "blue-developer", {"name": "blue-reply"})
    assert r.status_code == 201 and r.json()["team_id"] == "team_blue" and r.json()["visibility"] == "team", r.text
    for _ in range(2):
        assert (
            await call(deck, "POST", "/api/registry/prompts/blue-reply/versions", "blue-developer", PROMPT)
        ).is_success
    moved = await call(deck, "PUT", "/api/registry/prompts/blue-reply/labels/staging", "blue-developer", {"version": 1})
    assert moved.status_code == 200, moved.text


def chat_with_prompt(name: str) -> dict[str, Any]:
    prompt = {"name": name, "label": "staging", "variables": {"customer": "Ada", "question": "refund?"}}
    return {"model": "plain", "messages": [], "prompt": prompt}


async def test_another_team_cannot_see_or_move_a_teams_prompt(teams: Deck) -> None:
    await blue_prompt(teams)
    base = "/api/registry/prompts/blue-reply"
    # (method, path, body, needs the developer role)
    hidden = [
        ("GET", base, None, False),
        ("GET", f"{base}/versions/1", None, False),
        ("GET", f"{base}/resolve?label=staging", None, False),
        ("POST", f"{base}/render", {"label": "staging", "variables": {"customer": "a", "question": "b"}}, False),
        ("GET", f"{base}/diff?from=1&to=2", None, False),
        ("GET", f"{base}/history", None, False),
        ("PUT", f"{base}/labels/staging", {"version": 2}, True),
        ("DELETE", f"{base}/labels/staging", None, True),
        ("POST", f"{base}/labels/staging/rollback", {}, True),
        ("PATCH", base, {"visibility": "shared"}, True),
    ]
    for who in ("red-developer", "red-viewer"):
        names = [p["name"] for p in (await call(teams, "GET", "/api/registry/prompts", who)).json()["data"]]
        assert "blue-reply" not in names
        for method, path, body, write in hidden:
            r = await call(teams, method, path, who, body)
            # A viewer may write nothing at all (the role check comes first); otherwise it is missing.
            wanted = 403 if write and who == "red-viewer" else 404
            assert r.status_code == wanted, (who, method, path, r.text)
    # The regression: a developer of another team moved the label; now it does not move.
    history = (await call(teams, "GET", f"{base}/history", "blue-viewer")).json()["data"]
    assert [(h["label"], h["to_version"]) for h in history] == [("staging", 1)]
    taken = await call(teams, "POST", f"{base}/versions", "red-developer", PROMPT)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"
    # Inference keys follow their team: red's application cannot render blue's prompt.
    red_app = await call(teams, "POST", "/v1/chat/completions", "red-inference", chat_with_prompt("blue-reply"))
    assert red_app.status_code == 404 and red_app.json()["error"]["code"] == "prompt_not_found"
    blue_app = await call(teams, "POST", "/v1/chat/completions", "blue-inference", chat_with_prompt("blue-reply"))
    assert blue_app.status_code == 200, blue_app.text
    # The owning team and admins read it.
    for who in ("blue-viewer", "admin"):
        assert (await call(teams, "GET", base, who)).status_code == 200


async def test_a_shared_prompt_is_read_by_every_team_and_changed_by_its_own(teams: Deck) -> None:
    await blue_prompt(teams)
    base = "/api/registry/prompts/blue-reply"
    assert (await call(teams, "PATCH", base, "blue-viewer", {"visibility": "shared"})).status_code == 403
    shared = await call(teams, "PATCH", base, "blue-developer", {"visibility": "shared"})
    assert shared.status_code == 200 and shared.json()["visibility"] == "shared", shared.text
    assert (await call(teams, "GET", base, "red-viewer")).status_code == 200
    assert "blue-reply" in [
        p["name"] for p in (await call(teams, "GET", "/api/registry/prompts", "red-viewer")).json()["data"]
    ]
    red_app = await call(teams, "POST", "/v1/chat/completions", "red-inference", chat_with_prompt("blue-reply"))
    assert red_app.status_code == 200, red_app.text
    refused = await call(teams, "PUT", f"{base}/labels/staging", "red-developer", {"version": 2})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_owner"
    assert (await call(teams, "POST", f"{base}/versions", "red-developer", PROMPT)).status_code == 403
    assert (await call(teams, "PATCH", base, "red-developer", {"visibility": "team"})).status_code == 403
    # Only an admin gives it to another team.
    assert (await call(teams, "PATCH", base, "blue-developer", {"team": "red"})).status_code == 403
    given = await call(teams, "PATCH", base, "admin", {"team": "red", "visibility": "team"})
    assert given.status_code == 200 and given.json()["team_id"] == "team_red", given.text
    assert (await call(teams, "GET", base, "blue-developer")).status_code == 404
    assert (await call(teams, "PUT", f"{base}/labels/staging", "red-developer", {"version": 2})).status_code == 200


async def test_admins_create_for_any_team_and_members_only_for_their_own(teams: Deck) -> None:
    made = await call(teams, "POST", "/api/registry/prompts", "admin", {"name": "for-red", "team": "red"})
    assert made.status_code == 201 and made.json()["team_id"] == "team_red", made.text
    assert (
        await call(teams, "POST", "/api/registry/prompts/for-red/versions", "red-developer", PROMPT)
    ).status_code == 201
    refused = await call(teams, "POST", "/api/registry/prompts", "blue-developer", {"name": "x", "team": "red"})
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "team"
    unknown = await call(teams, "POST", "/api/registry/prompts", "admin", {"name": "y", "team": "nope"})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "team"
    exists = await call(
        teams, "POST", "/api/registry/prompts", "red-developer", {"name": "for-red", "visibility": "shared"}
    )
    assert exists.status_code == 409


async def test_another_team_cannot_move_a_teams_model_or_take_a_routes_model(teams: Deck) -> None:
    version = {"provider": "fake", "model": "blue-v1"}
    assert (
        await call(teams, "POST", "/api/registry/models/blue-bot/versions", "blue-developer", version)
    ).status_code == 201
    moved = await call(teams, "PUT", "/api/registry/models/blue-bot/aliases/staging", "blue-developer", {"version": 1})
    assert moved.status_code == 200, moved.text
    r = await call(teams, "PUT", "/api/registry/models/blue-bot/aliases/staging", "red-developer", {"version": 1})
    assert r.status_code == 404
    r = await call(teams, "POST", "/api/registry/models/blue-bot/versions", "red-developer", version)
    assert r.status_code == 409 and r.json()["error"]["code"] == "name_taken"
    served = await call(
        teams,
        "POST",
        "/v1/chat/completions",
        "red-inference",
        {"model": "blue-bot-route", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert json.loads(served.json()["choices"][0]["message"]["content"])["model"] == "blue-v1"
    # Route 'support' follows support-bot, which nobody registered: it is the default team's,
    # so a team's developer may not take the name (and with it the route's traffic).
    taken = await call(teams, "POST", "/api/registry/models/support-bot/versions", "blue-developer", version)
    assert taken.status_code == 403 and taken.json()["error"]["code"] == "not_route_owner", taken.text
    assert (
        await call(teams, "POST", "/api/registry/models/support-bot/versions", "developer", version)
    ).status_code == 201


async def test_apply_refuses_another_teams_prompt(teams: Deck) -> None:
    await blue_prompt(teams)
    declared = {"prompts": [{"name": "blue-reply", "labels": {"staging": 2}}]}
    refused = await call(teams, "POST", "/api/registry/apply", "red-developer", {**declared, "dry_run": True})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "name_taken", refused.text
    applied = await call(teams, "POST", "/api/registry/apply", "blue-developer", declared)
    assert applied.status_code == 200 and applied.json()["applied"], applied.text
    mine = {"prompts": [{"name": "red-reply", "versions": [{"version": 1, **PROMPT}], "labels": {"staging": 1}}]}
    assert (await call(teams, "POST", "/api/registry/apply", "red-developer", mine)).status_code == 200
    shown = (await call(teams, "GET", "/api/registry/prompts/red-reply", "red-viewer")).json()
    assert shown["team_id"] == "team_red" and shown["labels"] == {"staging": 1}
    assert (await call(teams, "GET", "/api/registry/prompts/red-reply", "blue-viewer")).status_code == 404


async def test_the_routes_list_names_each_routes_owner(teams: Deck) -> None:
    version = {"provider": "fake", "model": "blue-v1"}
    assert (await call(teams, "POST", "/api/registry/models/blue-bot/versions", "blue-developer", version)).is_success
    routes = (await call(teams, "GET", "/api/registry/routes", "red-viewer")).json()["data"]
    owners = {r["name"]: (r["owner"]["team_id"], r["owner"]["admins_only"]) for r in routes}
    assert owners == {
        "blue-chat": ("team_blue", False),  # named by the config
        "blue-bot-route": ("team_blue", False),
        "plain": (None, True),  # a configured route naming no team
        "support": (None, False),  # follows support-bot, not registered yet: the default team's
    }
