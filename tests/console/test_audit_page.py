"""The console's audit log against a real ``lmdeck serve`` (``spend_world``, over httpx): the entries and
the chain's verdict as ``/api/audit`` and ``/api/audit/verify`` give them, paging after a sequence
number, filters, an edited entry named as the first broken one, admins only, malformed queries a 4xx."""

from __future__ import annotations

import re
import sqlite3

import pytest

from lmdeck.console.pages.audit import PAGE_SIZE
from lmdeck.testing.console_client import ConsoleClient
from lmdeck.testing.spend_world import SpendWorld


def seqs_on(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'class="audit-entry" data-seq="(\d+)"', page)]


@pytest.fixture
def console(spend_world: SpendWorld) -> ConsoleClient:
    return ConsoleClient(spend_world.gw.url)


def test_entries_and_the_verdict_match_the_api(spend_world: SpendWorld, console: ConsoleClient) -> None:
    w = spend_world
    console.sign_in(w.keys["admin"])
    page = console.get("/console/audit")
    assert page.status_code == 200
    verdict = w.api("GET", "/api/audit/verify").json()
    assert verdict["ok"] and verdict["entries"] > 0
    assert 'data-ok="true"' in page.text
    assert re.search(rf"Chain verified: all {verdict['entries']} entries", page.text)
    api = w.api("GET", "/api/audit", params={"limit": PAGE_SIZE}).json()["data"]
    assert seqs_on(page.text) == [e["seq"] for e in api]
    assert w.team_a in page.text  # the team the world made, as an entry's target


def test_pages_follow_the_sequence_and_filters_narrow_them(spend_world: SpendWorld, console: ConsoleClient) -> None:
    w = spend_world
    for i in range(PAGE_SIZE + 3):  # enough entries for a second page
        made = w.api("POST", "/api/teams", json={"name": f"audit-page-{w.team_a}-{i}"})
        assert made.status_code == 201
    console.sign_in(w.keys["admin"])
    first = console.get("/console/audit").text
    shown = seqs_on(first)
    assert len(shown) == PAGE_SIZE
    found = re.search(r'href="/console/audit\?after=(\d+)[^"]*" id="audit-next"', first)
    assert found is not None and int(found.group(1)) == shown[-1]
    second = console.get("/console/audit", params={"after": shown[-1]}).text
    api = w.api("GET", "/api/audit", params={"after": shown[-1], "limit": PAGE_SIZE}).json()["data"]
    assert seqs_on(second) == [e["seq"] for e in api] and api

    only = console.get("/console/audit", params={"action": "team.created"}).text
    assert set(re.findall(r'<td class="action">([^<]+)</td>', only)) == {"team.created"}
    nobody = console.get("/console/audit", params={"actor": "key:no-such-key"}).text
    assert seqs_on(nobody) == [] and "No entries match" in nobody
    actor = w.api("GET", "/api/audit", params={"limit": 1}).json()["data"][0]["actor"]
    by_actor = console.get("/console/audit", params={"actor": actor}).text
    assert seqs_on(by_actor) == [
        e["seq"] for e in w.api("GET", "/api/audit", params={"actor": actor, "limit": PAGE_SIZE}).json()["data"]
    ]


def test_an_edited_entry_is_named_as_the_first_broken_one(spend_world: SpendWorld, console: ConsoleClient) -> None:
    w = spend_world
    console.sign_in(w.keys["admin"])
    victim = w.api("GET", "/api/audit", params={"limit": 2}).json()["data"][1]
    db = sqlite3.connect(w.gw.data_dir / "lmdeck.db")
    try:
        with db:
            db.execute("UPDATE audit_log SET target = ? WHERE seq = ?", ("team:edited", victim["seq"]))
        verdict = w.api("GET", "/api/audit/verify").json()
        assert not verdict["ok"] and verdict["first_bad"] == victim["seq"]
        page = console.get("/console/audit").text
        assert 'data-ok="false"' in page and f"Chain broken at entry {victim['seq']}" in page
    finally:
        with db:
            db.execute("UPDATE audit_log SET target = ? WHERE seq = ?", (victim["target"], victim["seq"]))
        db.close()
    assert w.api("GET", "/api/audit/verify").json()["ok"]


@pytest.mark.parametrize("who", ["viewer", "a_dev"])
def test_only_admins_open_the_audit_log(spend_world: SpendWorld, console: ConsoleClient, who: str) -> None:
    console.sign_in(spend_world.keys[who])
    page = console.get("/console/audit")
    assert page.status_code == 403 and "audit-table" not in page.text
    assert 'href="/console/audit"' not in console.get("/console/overview").text
    assert spend_world.api("GET", "/api/audit", key=who).status_code == 403


@pytest.mark.parametrize(
    "query",
    [
        "after=abc",
        "after=-1",
        "after=1.5",
        "after=" + "9" * 30,
        "after=%EF%BC%91",
        "action=" + "a" * 500,
        "actor=" + "b" * 201,
    ],
)
def test_a_malformed_query_is_a_4xx(spend_world: SpendWorld, console: ConsoleClient, query: str) -> None:
    console.sign_in(spend_world.keys["admin"])
    answer = console.get(f"/console/audit?{query}")
    assert 400 <= answer.status_code < 500, (query, answer.status_code)
