"""Spend reports: cost from the stored traces by key, team, user, route, tag and model."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.sql_store import SQLTraceStore
from policy.deck import Deck, auth


def trace(n: int, cost: float, **fields: Any) -> TraceRecord:
    return TraceRecord(id=f"spend{n:03d}", cost_micros=round(cost * 1e6), input_tokens=10, output_tokens=5, **fields)


@pytest.fixture
async def spent(deck: Deck) -> Deck:
    now = time.time()
    SQLTraceStore(deck.gateway.db).insert(
        [
            trace(1, 1.0, key_id="ka", team_id="ta", user="u1", route="r1", tags=["x"], upstream_model="m1"),
            trace(2, 2.0, key_id="ka", team_id="ta", user="u2", route="r2", tags=["x", "y"], upstream_model="m1"),
            trace(3, 4.0, key_id="kb", team_id="tb", user="u1", route="r1", upstream_model="m2"),
            trace(4, 8.0, key_id="kb", team_id="tb", route="r1", created_at=now - 400 * 86400),  # long ago
        ]
    )
    return deck


async def report(deck: Deck, key: str | None = None, **params: Any) -> dict[str, Any]:
    headers = auth(key) if key else None
    if headers is None:
        response = await deck.admin("GET", "/api/spend", params=params)
    else:
        response = await deck.http.get("/api/spend", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def groups(body: dict[str, Any]) -> dict[str | None, float]:
    return {row["group"]: row["cost"] for row in body["data"]}


async def test_spend_by_each_attribute(spent: Deck) -> None:
    assert groups(await report(spent, by="team", period="month")) == {"tb": 4.0, "ta": 3.0}
    assert groups(await report(spent, by="key", period="month")) == {"kb": 4.0, "ka": 3.0}
    assert groups(await report(spent, by="user", period="month")) == {"u1": 5.0, "u2": 2.0}
    assert groups(await report(spent, by="route", period="month")) == {"r1": 5.0, "r2": 2.0}
    assert groups(await report(spent, by="model", period="month")) == {"m2": 4.0, "m1": 3.0}
    by_tag = await report(spent, by="tag", period="month")
    assert groups(by_tag) == {"x": 3.0, "y": 2.0}
    assert by_tag["total_cost"] == 7.0 and by_tag["total_cost_micros"] == 7_000_000  # each request counted once
    assert (await report(spent, by="team", period="total"))["total_cost"] == 15.0
    row = (await report(spent, by="team", period="month"))["data"][0]
    assert (row["requests"], row["input_tokens"], row["output_tokens"]) == (1, 10, 5)


async def test_a_team_member_sees_only_its_team(spent: Deck) -> None:
    team = (await spent.admin("POST", "/api/teams", json={"name": "a-team"})).json()
    viewer = await spent.new_key(name="v", role="viewer", team_id=team["id"])
    assert (await report(spent, viewer["key"], by="team"))["data"] == []
    SQLTraceStore(spent.gateway.db).insert([trace(9, 0.5, team_id=team["id"], user="u9", tags=["z"])])
    assert groups(await report(spent, viewer["key"], by="user")) == {"u9": 0.5}
    assert groups(await report(spent, viewer["key"], by="tag")) == {"z": 0.5}
    assert groups(await report(spent, by="user")) == {"u1": 5.0, "u2": 2.0, "u9": 0.5}
    inference = await spent.new_key(name="i", role="inference", team_id=team["id"])
    denied = await spent.http.get("/api/spend", headers=auth(inference["key"]))
    assert denied.status_code == 403


async def test_bad_parameters_are_400s(spent: Deck) -> None:
    for params in ({"by": "colour"}, {"period": "week"}, {"since": "yesterday"}):
        response = await spent.admin("GET", "/api/spend", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["type"] == "invalid_request_error"
