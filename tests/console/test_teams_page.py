"""The console's teams page against a real ``lmdeck serve`` (``spend_world``, over httpx): teams with
their limits, keys and this month's spend as the API gives them, a team's key seeing its own team only,
and the admin's create form (validated, audited) that nobody else may post."""

from __future__ import annotations

import re

import pytest

from lmdeck.testing.console_client import ConsoleClient
from lmdeck.testing.spend_world import SpendWorld


def teams_on(page: str) -> dict[str, dict[str, str]]:
    """team id → its ``keys`` count and ``spent`` micro-dollars as the table shows them."""
    rows = re.findall(r'<tr data-team="([^"]+)">.*?class="keys">(\d+)<.*?class="spent" data-micros="(\d*)"', page, re.S)
    return {team: {"keys": keys, "spent": spent} for team, keys, spent in rows}


@pytest.fixture
def console(spend_world: SpendWorld) -> ConsoleClient:
    return ConsoleClient(spend_world.gw.url)


def test_an_admin_sees_every_team_with_its_keys_and_spend(spend_world: SpendWorld, console: ConsoleClient) -> None:
    w = spend_world
    console.sign_in(w.keys["admin"])
    page = console.get("/console/teams")
    assert page.status_code == 200
    shown = teams_on(page.text)
    listed = w.api("GET", "/api/teams").json()["data"]
    assert set(shown) == {t["id"] for t in listed}
    spend = {r["group"]: r["cost_micros"] for r in w.api("GET", "/api/spend", params={"by": "team"}).json()["data"]}
    keys = w.api("GET", "/api/keys").json()["data"]
    for team in (w.team_a, w.team_b):
        live = [k for k in keys if k["team_id"] == team and k["state"] == "active"]
        assert shown[team] == {"keys": str(len(live)), "spent": str(spend[team])}
        assert spend[team] > 0


def test_a_team_key_sees_its_own_team_only(spend_world: SpendWorld, console: ConsoleClient) -> None:
    w = spend_world
    console.sign_in(w.keys["a_dev"])
    page = console.get("/console/teams")
    assert page.status_code == 200
    assert set(teams_on(page.text)) == {t["id"] for t in w.api("GET", "/api/teams", key="a_dev").json()["data"]}
    assert set(teams_on(page.text)) == {w.team_a} and w.team_b not in page.text


def test_an_admin_creates_a_team_through_the_form(spend_world: SpendWorld, console: ConsoleClient) -> None:
    w = spend_world
    csrf = console.sign_in(w.keys["admin"])
    name = f"made-in-console-{w.team_a}"
    form = {"csrf_token": csrf, "name": name, "rpm": "30", "tpm": "", "allowed_models": "demo, demo-cached"}
    made = console.post("/console/teams", form)
    assert made.status_code == 303, made.text
    team = next(t for t in w.api("GET", "/api/teams").json()["data"] if t["name"] == name)
    assert team["rpm"] == 30 and team["tpm"] is None and sorted(team["allowed_models"]) == ["demo", "demo-cached"]
    audit = w.api("GET", "/api/audit", params={"action": "team.created", "limit": 1000}).json()["data"]
    assert any(e["target"] == f"team:{team['id']}" for e in audit)
    assert team["id"] in teams_on(console.get("/console/teams").text)

    for bad in ({"name": ""}, {"rpm": "0"}, {"rpm": "many"}, {"name": name}):
        refused = console.post("/console/teams", {**form, **bad})
        assert 400 <= refused.status_code < 500, (bad, refused.status_code)
        assert 'id="form-error"' in refused.text
    assert console.post("/console/teams", {k: v for k, v in form.items() if k != "csrf_token"}).status_code == 403


@pytest.mark.parametrize("who", ["viewer", "a_dev"])
def test_others_see_no_form_and_a_forged_post_is_refused(
    spend_world: SpendWorld, console: ConsoleClient, who: str
) -> None:
    w = spend_world
    csrf = console.sign_in(w.keys[who])
    page = console.get("/console/teams")
    assert page.status_code == 200 and 'id="team-form"' not in page.text
    name = f"forged-{who}-{w.team_a}"
    assert console.post("/console/teams", {"csrf_token": csrf, "name": name}).status_code == 403
    assert not any(t["name"] == name for t in w.api("GET", "/api/teams").json()["data"])


@pytest.mark.parametrize("text", ["", ",,,", " , "])
def test_an_allowed_models_field_of_only_commas_or_spaces_allows_every_model(text: str) -> None:
    from lmdeck.console.pages.teams import _team_body

    assert "allowed_models" not in _team_body({"name": "t5", "allowed_models": text})
    assert _team_body({"name": "t6", "allowed_models": "demo, ,gpt"})["allowed_models"] == ["demo", "gpt"]
