"""The console's spend page against a real ``lmdeck serve`` (``spend_world``, over httpx): totals per
team, key and model and the cache's savings as ``/api/spend`` reports them, budgets as ``/api/budgets``
has them, a team's key seeing its team only, and the admin's budget form (validated, audited) that
nobody else may post."""

from __future__ import annotations

import re

import pytest

from lmdeck.console.rendering import template_environment
from lmdeck.testing.console_client import ConsoleClient
from lmdeck.testing.spend_world import SpendWorld

usd = template_environment().filters["usd"]


def groups_on(page: str) -> dict[str, int]:
    """The spend table: group → cost in micro-dollars."""
    table = page.split('id="spend-table"', 1)[1].split("</table>", 1)[0]
    return {
        g: int(m) for g, m in re.findall(r'<tr data-group="([^"]*)">.*?class="cost" data-micros="(\d+)"', table, re.S)
    }


def budgets_on(page: str) -> set[str]:
    return set(re.findall(r'data-budget="([^"]+)"', page))


@pytest.fixture
def console(spend_world: SpendWorld) -> ConsoleClient:
    return ConsoleClient(spend_world.gw.url)


@pytest.mark.parametrize("by", ["team", "key", "model"])
def test_the_totals_match_the_spend_api(spend_world: SpendWorld, console: ConsoleClient, by: str) -> None:
    console.sign_in(spend_world.keys["admin"])
    page = console.get("/console/spend", params={"by": by, "period": "month"})
    assert page.status_code == 200, page.text
    api = spend_world.api("GET", "/api/spend", params={"by": by, "period": "month"}).json()
    assert api["data"] and groups_on(page.text) == {r["group"] or "": r["cost_micros"] for r in api["data"]}
    assert re.search(rf'id="kpi-cost">{re.escape(usd(api["total_cost_micros"]))}<', page.text)
    assert re.search(rf'id="kpi-saved">{re.escape(usd(api["total_saved_micros"]))}<', page.text)
    hits = sum(r["cache_hits"] for r in api["data"])
    assert re.search(rf'id="kpi-cache-hits">{hits}<', page.text)
    assert 'data-chart="spend"' in page.text


def test_the_cache_hit_shows_what_it_saved(spend_world: SpendWorld, console: ConsoleClient) -> None:
    console.sign_in(spend_world.keys["admin"])
    page = console.get("/console/spend", params={"by": "team"}).text
    api = spend_world.api("GET", "/api/spend", params={"by": "team"}).json()
    team_a = next(r for r in api["data"] if r["group"] == spend_world.team_a)
    assert team_a["cache_hits"] == 1 and team_a["saved_micros"] > 0  # the second, identical question
    row = re.search(rf'<tr data-group="{spend_world.team_a}">(.*?)</tr>', page, re.S)
    assert row is not None
    assert f'class="saved" data-micros="{team_a["saved_micros"]}"' in row.group(1)
    assert api["total_saved_micros"] >= team_a["saved_micros"] > 0


def test_a_team_key_sees_its_team_only(spend_world: SpendWorld, console: ConsoleClient) -> None:
    w = spend_world
    for team, limit in ((w.team_a, "5"), (w.team_b, "3")):
        body = {"scope": "team", "subject_id": team, "period": "month", "limit_usd": limit}
        assert w.api("PUT", "/api/budgets", json=body).status_code == 200
    console.sign_in(w.keys["a_dev"])
    page = console.get("/console/spend", params={"by": "team"})
    assert page.status_code == 200
    assert set(groups_on(page.text)) == {w.team_a}
    mine = w.api("GET", "/api/spend", key="a_dev", params={"by": "team"}).json()
    assert groups_on(page.text) == {r["group"]: r["cost_micros"] for r in mine["data"]}
    assert w.team_b not in page.text
    seen = {b["id"] for b in w.api("GET", "/api/budgets", key="a_dev").json()["data"]}
    assert budgets_on(page.text) == seen and seen
    everyone = {b["id"] for b in w.api("GET", "/api/budgets").json()["data"]}
    assert everyone - seen  # team b's budget exists and is not shown
    by_key = console.get("/console/spend", params={"by": "key"})
    assert set(groups_on(by_key.text)) == {w.key_ids["a_dev"]}


def test_a_budget_shows_spent_reserved_left_and_a_burn_down(spend_world: SpendWorld, console: ConsoleClient) -> None:
    w = spend_world
    body = {"scope": "team", "subject_id": w.team_a, "period": "day", "limit_usd": "2"}
    budget = w.api("PUT", "/api/budgets", json=body).json()
    console.sign_in(w.keys["admin"])
    page = console.get("/console/spend").text
    card = re.search(rf'data-budget="{budget["id"]}"(.*?)</section>', page, re.S)
    assert card is not None
    status = w.api("GET", f"/api/budgets/{budget['id']}").json()
    for name, field in (("limit", "limit_micros"), ("spent", "spent_micros"), ("left", "remaining_micros")):
        assert f'class="{name}" data-micros="{status[field]}"' in card.group(1)
    assert 'data-chart="burndown"' in card.group(1)


def test_an_admin_sets_a_budget_through_the_form_and_it_is_audited(
    spend_world: SpendWorld, console: ConsoleClient
) -> None:
    w = spend_world
    csrf = console.sign_in(w.keys["admin"])
    assert 'id="budget-form"' in console.get("/console/spend").text
    form = {"csrf_token": csrf, "scope": "key", "subject_id": w.key_ids["b_dev"], "period": "day", "limit_usd": "1.25"}
    saved = console.post("/console/spend/budgets", form)
    assert saved.status_code == 303, saved.text
    budgets = w.api("GET", "/api/budgets").json()["data"]
    made = next(b for b in budgets if b["subject_id"] == w.key_ids["b_dev"] and b["period"] == "day")
    assert made["limit_micros"] == 1_250_000
    audit = w.api("GET", "/api/audit", params={"action": "budget.created", "limit": 1000}).json()["data"]
    assert any(e["target"].endswith(made["id"]) or made["id"] in str(e["after"]) for e in audit)

    for bad in ({"limit_usd": "-1"}, {"limit_usd": "lots"}, {"period": "year"}, {"subject_id": "no-such-key"}):
        refused = console.post("/console/spend/budgets", {**form, **bad})
        assert 400 <= refused.status_code < 500, (bad, refused.status_code)
        assert 'id="form-error"' in refused.text
    assert (
        console.post("/console/spend/budgets", {k: v for k, v in form.items() if k != "csrf_token"}).status_code == 403
    )


def test_a_viewer_sees_no_budget_form_and_a_forged_post_is_refused(
    spend_world: SpendWorld, console: ConsoleClient
) -> None:
    w = spend_world
    for who in ("viewer", "a_dev"):
        csrf = console.sign_in(w.keys[who])
        page = console.get("/console/spend")
        assert page.status_code == 200 and 'id="budget-form"' not in page.text
        form = {"csrf_token": csrf, "scope": "team", "subject_id": w.team_a, "period": "total", "limit_usd": "999"}
        assert console.post("/console/spend/budgets", form).status_code == 403
    budgets = w.api("GET", "/api/budgets").json()["data"]
    assert not any(b["period"] == "total" and b["subject_id"] == w.team_a for b in budgets)


@pytest.mark.parametrize(
    "query",
    ["by=user", "by=", "period=year", "period=total", "by=team&period=%00", "by=" + "x" * 5000, "period[]=day"],
)
def test_a_malformed_query_is_a_4xx(spend_world: SpendWorld, console: ConsoleClient, query: str) -> None:
    console.sign_in(spend_world.keys["admin"])
    answer = console.get(f"/console/spend?{query}")
    if query == "period[]=day":  # an unknown parameter is ignored, like any other
        assert answer.status_code == 200
    else:
        assert 400 <= answer.status_code < 500, (query, answer.status_code)
