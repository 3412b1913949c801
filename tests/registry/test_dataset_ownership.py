"""Datasets belong to the team whose traces built them: ``from-traces`` draws only the caller's
team's traces (an admin chooses), and another team's viewer cannot read the rows."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app as cli
from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.traces import TraceRecord
from lmdeck.registry.dataset_registry import DatasetRegistry
from lmdeck.sdk import Client
from lmdeck.tracing.sql_store import SQLTraceStore

from .conftest import Deck, LiveServer


async def call(deck: Deck, method: str, path: str, who: str, body: Any = None) -> Any:
    return await deck.client.request(method, path, json=body, headers=deck.auth(who))


def trace(question: str, team: str | None) -> TraceRecord:
    return TraceRecord(
        route="plain",
        status_code=200,
        team_id=team,
        request_body={"model": "plain", "messages": [{"role": "user", "content": question}]},
        response_body={"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]},
    )


def questions(rows: list[dict[str, Any]]) -> set[str]:
    return {r["input"]["messages"][0]["content"] for r in rows}


async def test_from_traces_draws_the_callers_team_and_hides_the_rows(teams: Deck) -> None:
    for who, question in (("blue-inference", "blue secret"), ("red-inference", "red secret"), ("admin", "no team")):
        body = {"model": "plain", "messages": [{"role": "user", "content": question}]}
        assert (await call(teams, "POST", "/v1/chat/completions", who, body)).status_code == 200
    # The in-process deck keeps traces in memory; the datasets read them from the store.
    SQLTraceStore(teams.gateway.db).insert(list(teams.sink.records))

    made = await call(
        teams, "POST", "/api/registry/datasets/blue-set/from-traces", "blue-developer", {"filter": "route=plain"}
    )
    assert made.status_code == 200 and made.json()["row_count"] == 1, made.text
    rows = (await call(teams, "GET", "/api/registry/datasets/blue-set/versions/1/rows", "blue-viewer")).json()["data"]
    assert questions(rows) == {"blue secret"}
    # The regression: another team's viewer read these rows.
    for who in ("red-viewer", "red-developer"):
        for path in ("blue-set", "blue-set/versions/1", "blue-set/versions/1/rows"):
            assert (await call(teams, "GET", f"/api/registry/datasets/{path}", who)).status_code == 404, (who, path)
        listed = (await call(teams, "GET", "/api/registry/datasets", who)).json()["data"]
        assert "blue-set" not in [d["name"] for d in listed]
    # A filter naming another team finds nothing: the caller's team is the only one drawn from.
    other = await call(
        teams, "POST", "/api/registry/datasets/peek/from-traces", "blue-developer", {"filter": "team=team_red"}
    )
    assert other.status_code == 404
    refused = await call(teams, "POST", "/api/registry/datasets/peek/from-traces", "blue-developer", {"team": "red"})
    assert refused.status_code == 403
    # A key without a team draws the traces without one.
    teamless = await call(
        teams, "POST", "/api/registry/datasets/plain-set/from-traces", "developer", {"filter": "route=plain"}
    )
    assert teamless.status_code == 200 and teamless.json()["row_count"] == 1, teamless.text
    # An admin chooses: every team at once is refused, one team makes a dataset of that team.
    mixed = await call(teams, "POST", "/api/registry/datasets/all/from-traces", "admin", {"filter": "route=plain"})
    assert mixed.status_code == 400 and mixed.json()["error"]["code"] == "several_teams", mixed.text
    red = await call(
        teams, "POST", "/api/registry/datasets/red-set/from-traces", "admin", {"filter": "route=plain", "team": "red"}
    )
    assert red.status_code == 200, red.text
    listed = (await call(teams, "GET", "/api/registry/datasets", "red-viewer")).json()["data"]
    assert [(d["name"], d["team_id"]) for d in listed] == [("red-set", "team_red")]
    rows = (await call(teams, "GET", "/api/registry/datasets/red-set/versions/1/rows", "red-viewer")).json()["data"]
    assert questions(rows) == {"red secret"}
    by_filter = await call(
        teams, "POST", "/api/registry/datasets/red-2/from-traces", "admin", {"filter": "team=team_red"}
    )
    assert by_filter.status_code == 200
    shown = (await call(teams, "GET", "/api/registry/datasets", "red-viewer")).json()["data"]
    assert {d["name"] for d in shown} == {"red-set", "red-2"}


async def test_a_shared_dataset_is_read_by_every_team_and_grown_by_its_own(teams: Deck) -> None:
    rows = {"rows": [{"input": "2+2", "expected": "4"}]}
    assert (
        await call(teams, "POST", "/api/registry/datasets/sums/versions", "blue-developer", rows)
    ).status_code == 200
    assert (await call(teams, "GET", "/api/registry/datasets/sums", "red-viewer")).status_code == 404
    grown = await call(teams, "POST", "/api/registry/datasets/sums/versions", "red-developer", rows)
    assert grown.status_code == 409 and grown.json()["error"]["code"] == "name_taken"
    shared = await call(teams, "PATCH", "/api/registry/datasets/sums", "blue-developer", {"visibility": "shared"})
    assert shared.status_code == 200 and shared.json()["visibility"] == "shared", shared.text
    assert (await call(teams, "GET", "/api/registry/datasets/sums/versions/1/rows", "red-viewer")).status_code == 200
    assert (await call(teams, "POST", "/api/registry/datasets/sums/versions", "red-developer", rows)).status_code == 403
    upload = {"rows": rows["rows"], "team": "red"}
    assert (await call(teams, "POST", "/api/registry/datasets/x/versions", "blue-developer", upload)).status_code == 403
    made = await call(teams, "POST", "/api/registry/datasets/for-red/versions", "admin", upload)
    assert made.status_code == 200
    assert (await call(teams, "GET", "/api/registry/datasets/for-red", "red-viewer")).status_code == 200


async def test_a_teamless_member_draws_only_traces_without_a_team(db: Database) -> None:
    SQLTraceStore(db).insert([trace("mine", None), trace("theirs", "t2")])
    teamless = Principal(key_id="k", role="developer")
    registry = DatasetRegistry(db)
    version, _, _ = await registry.from_traces("set", "route=plain", principal=teamless)
    _, rows = await registry.rows("set", "1", 0, 10, teamless)
    assert version.row_count == 1 and [r.input["messages"][0]["content"] for r in rows] == ["mine"]
    with pytest.raises(APIError) as hidden:
        await registry.rows("set", "1", 0, 10, Principal(key_id="k2", role="viewer", team_id="t2"))
    assert hidden.value.status == 404


def test_the_command_line_names_the_team_and_shares(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = live_server.gateway.policy
    for team in ("blue", "other"):
        policy.identities.create_team(team, team_id=f"team_{team}")
    _, viewer = policy.identities.create_key("other viewer", "viewer", team_id="team_other")
    policy.keys.load()
    SQLTraceStore(live_server.gateway.db).insert([trace("blue question", "team_blue"), trace("other", None)])
    monkeypatch.setenv("LMDECK_BASE_URL", live_server.base_url)
    monkeypatch.setenv("LMDECK_API_KEY", live_server.keys["admin"])
    made = CliRunner().invoke(
        cli, ["datasets", "from-traces", "blue-set", "--filter", "route=plain", "--team", "blue", "--shared"]
    )
    assert made.exit_code == 0, made.output
    shown = Client(live_server.base_url, viewer).datasets.list()
    assert [(d["name"], d["team_id"], d["visibility"]) for d in shown] == [("blue-set", "team_blue", "shared")]
    rows = list(Client(live_server.base_url, viewer).datasets.rows("blue-set", 1))
    assert [r["input"]["messages"][0]["content"] for r in rows] == ["blue question"]
