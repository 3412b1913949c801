"""Corrections into datasets: feedback and annotation labels carry the answer a model should have
given, and a dataset version cut from traces (``feedback<=0 skill=count``) takes it as its expected
output, row by row, keeping or dropping the rows nobody corrected."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.sql_store import SQLTraceStore

from .conftest import Deck


def trace(trace_id: str, skill: str, question: str, answer: str, *, tagged: bool = False) -> TraceRecord:
    body: dict[str, Any] = {"model": "demo", "messages": [{"role": "user", "content": question}]}
    if not tagged:
        body["metadata"] = {"skill": skill}
    return TraceRecord(
        id=trace_id,
        team_id="team_blue",
        route="demo",
        tags=[f"skill:{skill}"] if tagged else [],
        request_body=body,
        response_body={"choices": [{"message": {"role": "assistant", "content": answer}}]},
    )


@pytest.fixture
async def deck(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> AsyncIterator[Deck]:
    async with start_deck(make_settings()) as running:
        SQLTraceStore(running.gateway.db).insert(
            [
                trace("c1", "count", "How many r in 'mirror'?", "2"),
                trace("c2", "count", "How many s in 'moss'?", "1", tagged=True),
                trace("c3", "count", "How many a in 'banana'?", "3"),
                trace("a1", "add", "What is 2 + 2?", "5"),
            ]
        )
        yield running


async def feedback(deck: Deck, trace_id: str, **body: Any) -> dict[str, Any]:
    r = await deck.call("POST", "/api/feedback", "blue-dev", json={"trace_id": trace_id, **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def from_traces(deck: Deck, name: str, **body: Any) -> Any:
    return await deck.call("POST", f"/api/registry/datasets/{name}/from-traces", "blue-dev", json=body)


async def rows(deck: Deck, name: str, version: int) -> list[dict[str, Any]]:
    r = await deck.call("GET", f"/api/registry/datasets/{name}/versions/{version}/rows", "blue-dev")
    return list(r.json()["data"])


async def test_feedback_carries_a_correction_that_reads_back(deck: Deck) -> None:
    stored = await feedback(deck, "c1", value=0, correction="m-i-r-r-o-r: 3")
    assert stored["correction"] == "m-i-r-r-o-r: 3"
    only = await feedback(deck, "c3", correction={"answer": 3})  # a correction alone is feedback enough
    assert only["value"] is None and only["correction"] == {"answer": 3}
    listed = (await deck.call("GET", "/api/feedback", params={"trace_id": "c1"})).json()["data"]
    assert [e["correction"] for e in listed] == ["m-i-r-r-o-r: 3"]


async def test_an_inference_key_rates_but_may_not_correct(deck: Deck) -> None:
    rated = await deck.call("POST", "/api/feedback", "blue-app", json={"trace_id": "c1", "value": 0, "comment": "no"})
    assert rated.status_code == 201, rated.text
    for correction in ("3", {"answer": 3}):
        r = await deck.call("POST", "/api/feedback", "blue-app", json={"trace_id": "c1", "correction": correction})
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "correction_not_allowed" and error["param"] == "correction"
    listed = (await deck.call("GET", "/api/feedback", params={"trace_id": "c1"})).json()["data"]
    assert [e["correction"] for e in listed] == [None]


async def test_a_correction_past_the_size_limit_is_a_400_naming_it(deck: Deck) -> None:
    limit = deck.evaluation.feedback.max_correction_bytes
    assert limit == 8192  # evaluation.feedback_correction_max_bytes's default
    at_limit = await feedback(deck, "c1", correction="x" * limit)
    assert len(at_limit["correction"]) == limit
    for correction in ("é" * (limit // 2 + 1), {"answer": "x" * limit}):
        r = await deck.call("POST", "/api/feedback", "blue-dev", json={"trace_id": "c1", "correction": correction})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "correction_too_large" and error["param"] == "correction"
        assert "correction" in error["message"] and str(limit) in error["message"]


async def test_a_dataset_from_low_rated_count_traces_takes_feedback_corrections(deck: Deck) -> None:
    await feedback(deck, "c1", value=0, correction="3")
    await feedback(deck, "c2", value=0)  # rated down, nobody said what is right
    await feedback(deck, "c3", value=1)
    await feedback(deck, "a1", value=0, correction="4")

    kept = await from_traces(deck, "count-fixes", filter="feedback<=0 skill=count", corrections="feedback")
    assert kept.status_code == 200, kept.text
    version = kept.json()
    assert version["source"]["corrections"] == "feedback" and version["source"]["corrected"] == 1
    by_trace = {r["trace_id"]: r for r in await rows(deck, "count-fixes", version["version"])}
    assert set(by_trace) == {"c1", "c2"}  # c3 was rated up; a1 is another skill
    assert by_trace["c1"]["expected"] == "3" and by_trace["c1"]["metadata"]["source"] == "correction"
    assert by_trace["c1"]["metadata"]["correction_from"] == "feedback"
    assert by_trace["c2"]["expected"] == "1" and by_trace["c2"]["metadata"]["source"] == "trace"

    dropped = await from_traces(
        deck, "count-fixes", filter="feedback<=0 skill=count", corrections="feedback", keep_uncorrected=False
    )
    assert dropped.status_code == 200 and dropped.json()["skipped"] == 1
    (only,) = await rows(deck, "count-fixes", dropped.json()["version"])
    assert only["trace_id"] == "c1" and only["expected"] == "3"

    plain = await from_traces(deck, "count-plain", filter="skill!=count")
    assert [r["trace_id"] for r in await rows(deck, "count-plain", plain.json()["version"])] == ["a1"]


async def test_annotation_labels_become_expected_outputs(deck: Deck) -> None:
    queue = {"name": "count-review", "categories": ["wrong", "ok"]}
    assert (await deck.call("PUT", "/api/annotation-queues/count-review", "blue-dev", json=queue)).status_code == 200
    added = await deck.call(
        "POST", "/api/annotation-queues/count-review/items", "blue-dev", json={"trace_ids": ["c1", "c2"]}
    )
    assert added.status_code == 200, added.text
    item = (await deck.call("POST", "/api/annotation-queues/count-review/claim", "blue-dev", json={})).json()
    label = {"claim": item["claim"], "category": "wrong", "correction": "the right count: 3"}
    path = f"/api/annotation-queues/count-review/items/{item['id']}/label"
    assert (await deck.call("POST", path, "blue-dev", json=label)).status_code == 200

    made = await from_traces(
        deck, "count-labels", filter="skill=count", corrections="annotations", keep_uncorrected=False
    )
    assert made.status_code == 200, made.text
    (row,) = await rows(deck, "count-labels", made.json()["version"])
    assert row["trace_id"] == item["trace_id"] and row["expected"] == "the right count: 3"
    assert row["metadata"]["source"] == "correction" and row["metadata"]["correction_from"] == "annotations"

    none = await from_traces(deck, "count-none", filter="skill=add", corrections="annotations", keep_uncorrected=False)
    assert none.status_code == 404 and "correction" in none.json()["error"]["message"]


async def test_bad_corrections_and_filters_are_400s(deck: Deck) -> None:
    for body in (
        {"filter": "skill=count", "corrections": "emails"},
        {"filter": "skill=count", "keep_uncorrected": "sometimes"},
        {"filter": "feedback<=bad"},
        {"filter": "skill>count"},
    ):
        r = await from_traces(deck, "bad", **body)
        assert r.status_code == 400, (body, r.text)
        assert set(r.json()["error"]) >= {"message", "type", "param", "code"}
