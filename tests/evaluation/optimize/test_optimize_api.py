"""Prompt optimization through the gateway in process, against the fake arithmetic model.

The fake answers the last question it is asked and ignores instructions and demonstrations, so no
candidate can beat the original here: what is checked is the search itself (its eval runs, the
held-out rows, the demonstrations, progress, the record) and that nothing is registered. A winning
search is tested against the demo model in tests/integration/test_prompt_optimize.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..conftest import Deck

PROMPT = {
    "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "What is {{a}} + {{b}}?"}],
    "variables": {"a": "integer", "b": "integer"},
}


async def setup(deck: Deck, rows: int = 24) -> None:
    assert (await deck.call("POST", "/api/registry/prompts", json={"name": "adder"})).status_code == 201
    assert (await deck.call("POST", "/api/registry/prompts/adder/versions", json=PROMPT)).status_code == 201
    assert (
        await deck.call("PUT", "/api/registry/prompts/adder/labels/production", json={"version": 1})
    ).status_code == 200
    data = [{"input": {"a": i, "b": 3 * i + 2}, "expected": str(4 * i + 2)} for i in range(rows)]
    r = await deck.call("POST", "/api/registry/datasets/sums/versions", json={"rows": data})
    assert r.status_code in (200, 201), r.text


async def finished(deck: Deck, record: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 180  # generous: a loaded machine only makes the wait longer
    while True:
        got = await deck.call("GET", f"/api/registry/prompts/adder/optimizations/{record['id']}")
        assert got.status_code == 200, got.text
        if got.json()["status"] != "running":
            return dict(got.json())
        assert time.monotonic() < deadline, "the optimization did not finish"
        await asyncio.sleep(0.02)


def last_user(messages: list[dict[str, Any]]) -> str:
    return str([m for m in messages if m["role"] == "user"][-1]["content"])


async def test_a_search_that_finds_nothing_better_registers_nothing(deck: Deck) -> None:
    await setup(deck)
    body = {"dataset": "sums@1", "route": "sloppy", "evaluators": ["exact"], "candidates": 4, "demos": 2, "seed": 3}
    started = await deck.call("POST", "/api/registry/prompts/adder/optimize", json=body)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "running" and started.json()["from_version"] == 1
    record = await finished(deck, started.json())
    assert record["status"] == "succeeded", record
    assert record["progress"]["done"] == record["progress"]["total"] == 1 + 1 + 4
    result = record["result"]
    assert result["winner"] is None and result["registered"] is None
    assert result["heldout_rows"] == 12 and result["training_rows"] == 12
    # The careless model is right on most rows: those lend their own answers (bootstrapped).
    assert 0 < result["demo_pool"]["bootstrapped"] <= result["demo_pool"]["size"] == 12
    assert len(result["candidates"]) == 4
    assert all(c["mean"] == result["baseline"]["mean"] for c in result["candidates"])
    comparison = result["comparison"]
    assert comparison["rows"] == 12 and "exact" in comparison["evaluators"]
    assert comparison["evaluators"]["exact"]["p_value"] is not None
    versions = (await deck.call("GET", "/api/registry/prompts/adder")).json()["versions"]
    assert [v["version"] for v in versions] == [1]

    # Every candidate's run scored the same held-out rows, none of them a demonstration.
    heldout = None
    for candidate in result["candidates"]:
        rows = (await deck.call("GET", f"/api/evaluation/runs/{candidate['run']}/results")).json()["data"]
        questions = {last_user(r["input"]) for r in rows}
        heldout = heldout or questions
        assert questions == heldout and len(questions) == 12
        demo_questions = {m["content"] for r in rows for m in r["input"][:-1] if m["role"] == "user"}
        assert len(demo_questions) == 2 and demo_questions.isdisjoint(heldout)
        assert all(len(r["input"]) == (6 if r["input"][0]["role"] == "system" else 5) for r in rows)
    runs = (await deck.call("GET", "/api/evaluation/runs")).json()["data"]
    ours = [r for r in runs if (r["name"] or "").startswith(f"optimize {record['id']}")]
    assert sorted(r["name"].split(": ")[1] for r in ours) == sorted(
        ["bootstrap", "original"] + [f"candidate {i}" for i in range(1, 5)]
    )
    traces = deck.gateway.sink.records  # type: ignore[attr-defined]
    assert traces and all("eval" in t.tags for t in traces)

    listed = (await deck.call("GET", "/api/registry/prompts/adder/optimizations")).json()["data"]
    assert [r["id"] for r in listed] == [record["id"]]
    audit = (await deck.call("GET", "/api/audit", params={"target": "prompt:adder"})).json()["data"]
    assert {"prompt.optimization.started", "prompt.optimization.finished"} <= {e["action"] for e in audit}


async def test_same_seed_same_candidates(deck: Deck) -> None:
    await setup(deck)
    body = {"dataset": "sums@1", "route": "calc", "evaluators": ["exact"], "candidates": 3, "demos": 2, "seed": 9}
    first, second = [
        await finished(deck, (await deck.call("POST", "/api/registry/prompts/adder/optimize", json=body)).json())
        for _ in range(2)
    ]

    def picked(record: dict[str, Any]) -> list[Any]:
        return [(c["instruction"], c["demos"]) for c in record["result"]["candidates"]]

    assert picked(first) == picked(second)
    assert first["result"]["baseline"]["mean"] == 1.0 and first["result"]["registered"] is None


async def test_bad_optimize_requests_are_4xx_in_the_error_shape(deck: Deck) -> None:
    await setup(deck, rows=4)
    one = {"rows": [{"input": {"a": 1, "b": 1}, "expected": "2"}]}
    assert (await deck.call("POST", "/api/registry/datasets/one/versions", json=one)).status_code in (200, 201)
    ok = {"dataset": "sums@1", "route": "calc", "evaluators": ["exact"]}
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("adder", {**ok, "dataset": "one@1"}, 400, "at least 2"),
        ("ghost", ok, 404, "ghost"),
        ("adder", {**ok, "dataset": "nope@1"}, 404, "nope"),
        ("adder", {**ok, "route": None}, 400, "route"),
        ("adder", {**ok, "label": "production", "version": 1}, 400, "not both"),
        ("adder", {**ok, "label": "gone"}, 404, "gone"),
        ("adder", {**ok, "evaluators": ["no_such_evaluator"]}, 400, "no_such_evaluator"),
        ("adder", {**ok, "evaluators": []}, 400, "evaluators"),
        ("adder", {**ok, "candidates": 0}, 400, "candidates"),
        ("adder", {**ok, "seed": 2**63}, 400, "seed"),
        ("adder", {**ok, "holdout": 1.0}, 400, "holdout"),
        ("adder", {**ok, "instructions": ["{% if %}"]}, 400, "instruction"),
        ("adder", {**ok, "surprise": 1}, 400, "surprise"),
    ]
    for name, body, status, fragment in cases:
        r = await deck.call("POST", f"/api/registry/prompts/{name}/optimize", json=body)
        assert r.status_code == status, (body, r.text)
        error = r.json()["error"]
        assert fragment in error["message"] and error["type"], (body, r.text)
    r = await deck.call("POST", "/api/registry/prompts/adder/optimize", json=ok, who="viewer")
    assert r.status_code == 403
    assert (await deck.call("GET", "/api/registry/prompts/adder/optimizations/opt_nope")).status_code == 404
    assert (await deck.call("GET", "/api/registry/prompts/adder/optimizations", params={"limit": 0})).status_code == 400
