"""``/api/annotation-queues`` in process: a team's reviewers claim and label its queue's traces once, another
team sees none of it, every label is audited, and corrections become a dataset version that names its items."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.sql_store import SQLTraceStore

from ..conftest import Deck


def trace(trace_id: str, team: str, question: str, answer: str) -> TraceRecord:
    return TraceRecord(
        id=trace_id,
        created_at=1_800_000_000.0,
        team_id=team,
        route="calc",
        request_body={"model": "calc", "messages": [{"role": "user", "content": question}]},
        response_body={"choices": [{"message": {"role": "assistant", "content": answer}}]},
    )


@pytest.fixture
async def deck(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    async with start_deck(make_settings()) as running:
        policy = running.gateway.policy
        for team in ("blue", "red"):
            _, running.keys[f"{team}-viewer"] = policy.identities.create_key(
                f"{team} viewer", "viewer", team_id=f"team_{team}"
            )
        policy.keys.load()
        SQLTraceStore(running.gateway.db).insert(
            [
                trace("tb1", "team_blue", "2 + 2", "5"),
                trace("tb2", "team_blue", "3 + 3", "6"),
                trace("tr1", "team_red", "1 + 1", "2"),
            ]
        )
        yield running


def error(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    return dict(body["error"])


async def test_a_teams_reviewers_label_its_queue_once_and_export_the_corrections(deck: Deck) -> None:
    spec = {"name": "blue-review", "categories": ["wrong", "ok"], "dataset": "blue-fixes"}
    made = await deck.call("PUT", "/api/annotation-queues/blue-review", "blue-dev", json=spec)
    assert made.status_code == 200 and made.json()["created"] is True and made.json()["team_id"] == "team_blue"
    taken = await deck.call("PUT", "/api/annotation-queues/blue-review", "red-dev", json=spec)
    assert taken.status_code == 409 and error(taken.json())["code"] == "name_taken"
    assert (await deck.call("GET", "/api/annotation-queues/blue-review", "red-viewer")).status_code == 404
    assert (await deck.call("GET", "/api/annotation-queues", "red-viewer")).json()["data"] == []
    assert (await deck.call("PUT", "/api/annotation-queues/blue-review", "blue-viewer", json=spec)).status_code == 403

    added = await deck.call(
        "POST", "/api/annotation-queues/blue-review/items", "blue-viewer", json={"trace_ids": ["tb1", "tb2"]}
    )
    assert added.json() == {"added": ["tb1", "tb2"], "already_queued": []}
    foreign = await deck.call(
        "POST", "/api/annotation-queues/blue-review/items", "blue-viewer", json={"trace_ids": ["tr1"]}
    )
    assert foreign.status_code == 404 and error(foreign.json())["code"] == "trace_not_found"
    assert (await deck.call("POST", "/api/annotation-queues/blue-review/claim", "red-viewer")).status_code == 404

    first = (await deck.call("POST", "/api/annotation-queues/blue-review/claim", "blue-viewer", json={})).json()
    assert first["trace"]["input"] == {"messages": [{"role": "user", "content": "2 + 2"}]}
    assert first["trace"]["output"] == "5" and first["status"] == "claimed"
    path = f"/api/annotation-queues/blue-review/items/{first['id']}/label"
    bad = await deck.call("POST", path, "blue-viewer", json={"claim": first["claim"], "category": "rude"})
    assert bad.status_code == 400 and error(bad.json())["param"] == "category"
    empty = await deck.call("POST", path, "blue-viewer", json={"claim": first["claim"]})
    assert empty.status_code == 400
    label = {"claim": first["claim"], "score": 0.0, "category": "wrong", "correction": "4", "comment": "2+2=4"}
    labelled = await deck.call("POST", path, "blue-viewer", json=label)
    assert labelled.status_code == 200 and labelled.json()["label"]["correction"] == "4"
    again = await deck.call("POST", path, "blue-viewer", json=label)
    assert again.status_code == 409 and error(again.json())["code"] == "already_labelled"

    second = (await deck.call("POST", "/api/annotation-queues/blue-review/claim", "blue-dev")).json()
    assert second["trace_id"] == "tb2"
    ok = {"claim": second["claim"], "score": 1.0, "category": "ok"}
    assert (
        await deck.call("POST", f"/api/annotation-queues/blue-review/items/{second['id']}/label", "blue-dev", json=ok)
    ).status_code == 200
    assert (await deck.call("POST", "/api/annotation-queues/blue-review/claim", "blue-viewer")).status_code == 204
    shown = (await deck.call("GET", "/api/annotation-queues/blue-review", "blue-viewer")).json()
    assert shown["counts"] == {"pending": 0, "claimed": 0, "labelled": 2}

    assert (await deck.call("POST", "/api/annotation-queues/blue-review/export", "blue-viewer")).status_code == 403
    exported = await deck.call("POST", "/api/annotation-queues/blue-review/export", "blue-dev", json={})
    assert exported.status_code == 200, exported.text
    version = exported.json()
    assert version["items"] == [first["id"]] and version["skipped"] == []  # only the corrected item is a row
    assert version["source"] == {"kind": "annotation_queue", "queue": "blue-review", "items": [first["id"]]}
    rows = (
        await deck.call("GET", f"/api/registry/datasets/blue-fixes/versions/{version['version']}/rows", "blue-dev")
    ).json()
    (row,) = rows["data"]
    assert row["input"] == {"messages": [{"role": "user", "content": "2 + 2"}]} and row["expected"] == "4"
    assert row["trace_id"] == "tb1" and row["metadata"]["category"] == "wrong"
    assert (await deck.call("GET", "/api/registry/datasets/blue-fixes", "red-dev")).status_code == 404

    audit = (await deck.call("GET", "/api/audit", params={"action": "annotation.labelled"})).json()["data"]
    assert [(e["target"], e["after"]["category"]) for e in audit] == [
        (f"annotation-item:blue-review/{first['id']}", "wrong"),
        (f"annotation-item:blue-review/{second['id']}", "ok"),
    ]


async def test_bad_queue_definitions_are_refused_by_name(deck: Deck) -> None:
    unknown = await deck.call("PUT", "/api/annotation-queues/q", "blue-dev", json={"name": "q", "colour": "red"})
    assert unknown.status_code == 400
    both = {
        "name": "q",
        "rule": {"feedback_below": {"name": "t", "value": 1}, "score_below": {"evaluator": "e", "value": 1}},
    }
    refused = await deck.call("PUT", "/api/annotation-queues/q", "blue-dev", json=both)
    assert refused.status_code == 400 and "not both" in error(refused.json())["message"]
    other = await deck.call("PUT", "/api/annotation-queues/q", "blue-dev", json={"name": "r"})
    assert other.status_code == 400 and error(other.json())["param"] == "name"
    assert (await deck.call("POST", "/api/annotation-queues/none/claim", "blue-viewer")).status_code == 404
