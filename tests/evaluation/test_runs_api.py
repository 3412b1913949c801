"""Eval runs through the gateway in process: start, progress, results, compare, gate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from lmdeck.settings import Settings

from .conftest import Deck

PROMPT_GOOD = {
    "messages": [{"role": "user", "content": "What is {{a}} + {{b}}?"}],
    "variables": {"a": "integer", "b": "integer"},
}
PROMPT_BAD = {
    "messages": [{"role": "user", "content": "Add {{a}} to {{b}}."}],
    "variables": {"a": "integer", "b": "integer"},
}


async def make_prompt(deck: Deck, name: str = "adder") -> None:
    assert (await deck.call("POST", "/api/registry/prompts", json={"name": name})).status_code == 201
    for spec in (PROMPT_GOOD, PROMPT_BAD):
        r = await deck.call("POST", f"/api/registry/prompts/{name}/versions", json=spec)
        assert r.status_code == 201, r.text


async def make_dataset(deck: Deck, name: str = "sums", n: int = 40, **owner: str) -> None:
    rows = [{"input": {"a": i, "b": 2 * i + 1}, "expected": str(3 * i + 1)} for i in range(n)]
    r = await deck.call("POST", f"/api/registry/datasets/{name}/versions", json={"rows": rows, **owner})
    assert r.status_code in (200, 201), r.text


async def run_to_end(deck: Deck, who: str = "admin", **body: Any) -> dict[str, Any]:
    r = await deck.call("POST", "/api/evaluation/runs", json=body, who=who)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    deadline = time.monotonic() + 120  # generous: a loaded machine only makes the wait longer
    while True:
        run = (await deck.call("GET", f"/api/evaluation/runs/{run_id}", who=who)).json()
        if run["status"] != "running":
            return run
        assert time.monotonic() < deadline, "the run did not finish"
        await asyncio.sleep(0.02)


async def test_two_prompt_versions_compared_and_gated(deck: Deck) -> None:
    await make_prompt(deck)
    await make_dataset(deck)
    good = await run_to_end(deck, dataset="sums@1", prompt="adder@1", route="calc", evaluators=["exact", "numeric"])
    bad = await run_to_end(deck, dataset="sums@1", prompt="adder@2", route="calc", evaluators=["exact", "numeric"])
    assert good["status"] == bad["status"] == "succeeded", (good, bad)
    print(good["summary"], bad["summary"])
    cmp = (await deck.call("GET", "/api/evaluation/compare", params={"a": good["id"], "b": bad["id"]})).json()
    print(cmp["evaluators"])
    gate = (
        await deck.call(
            "GET", f"/api/evaluation/runs/{bad['id']}/gate", params={"gate": "exact>=0.9", "baseline": good["id"]}
        )
    ).json()
    print(gate)


async def test_model_version_judge_and_embedding_evaluators_in_one_run(deck: Deck) -> None:
    assert (await deck.call("POST", "/api/registry/models", json={"name": "calc-bot"})).status_code == 201
    for model in ("careful", "careless"):
        await deck.call("POST", "/api/registry/models/calc-bot/versions", json={"provider": "arith", "model": model})
    await deck.call("PUT", "/api/registry/models/calc-bot/aliases/production", json={"version": 1})
    rows = [{"input": f"What is {i} + {i}?", "expected": str(2 * i)} for i in range(30)]
    await deck.call("POST", "/api/registry/datasets/doubles/versions", json={"rows": rows})
    evaluators = ["exact", "judge=llm_judge:route=calc", "embedding_similarity:route=vectors", "rouge_l"]
    careful = await run_to_end(deck, dataset="doubles", route="support", evaluators=evaluators)
    careless = await run_to_end(deck, dataset="doubles", route="support", model="calc-bot@2", evaluators=evaluators)
    assert careful["model"] is None and careless["model"] == "calc-bot@2"
    scores = careful["summary"]["scores"]
    assert scores["exact"]["mean"] == 1.0 and scores["judge"]["mean"] == 1.0
    assert scores["embedding_similarity"]["mean"] == pytest.approx(1.0) and scores["rouge_l"]["mean"] == 1.0
    assert careless["summary"]["scores"]["exact"]["mean"] < 0.9
    # The alias was not moved: the run pinned version 2 for its own requests only.
    r = await deck.chat(model="support", messages=[{"role": "user", "content": "What is 40 + 40?"}])
    assert r.json()["model"] == "careful"
    results = (await deck.call("GET", f"/api/evaluation/runs/{careless['id']}/results")).json()["data"]
    traces = {t.id: t for t in deck.gateway.sink.records}  # type: ignore[attr-defined]
    first = traces[results[0]["trace_id"]]
    assert "eval" in first.tags and first.metadata["eval_run"] == careless["id"]
    # The bundle hash names the configuration that answered: version 2 for the pinned run.
    careful_rows = (await deck.call("GET", f"/api/evaluation/runs/{careful['id']}/results")).json()["data"]
    assert first.bundle_hash and first.bundle_hash != traces[careful_rows[0]["trace_id"]].bundle_hash
    assert results[0]["input_tokens"] == 7 and results[0]["latency_ms"] > 0


async def test_failed_rows_score_zero_and_are_kept(deck: Deck) -> None:
    rows = [{"input": "What is 1 + 1?", "expected": "2"}, {"input": "What is 2 + 2?", "expected": "4"}]
    await deck.call("POST", "/api/registry/datasets/tiny/versions", json={"rows": rows})
    run = await run_to_end(deck, dataset="tiny@1", route="no-such-route", evaluators=["exact"])
    assert run["status"] == "succeeded"
    assert run["summary"]["errors"] == 2 and run["summary"]["scores"]["exact"]["mean"] == 0.0
    results = (await deck.call("GET", f"/api/evaluation/runs/{run['id']}/results")).json()["data"]
    assert all("404" in r["error"] for r in results)


async def test_bad_run_requests_are_4xx(deck: Deck) -> None:
    await make_dataset(deck, n=3)
    cases = [
        ({"dataset": "sums@1", "evaluators": ["exact"]}, 400, "prompt"),
        ({"dataset": "sums@1", "route": "calc", "evaluators": []}, 400, "evaluators"),
        ({"dataset": "sums@1", "route": "calc", "evaluators": ["nope"]}, 400, "unknown evaluator"),
        ({"dataset": "sums@1", "route": "calc", "evaluators": ["regex:pattern=("]}, 400, "regular expression"),
        ({"dataset": "sums@9", "route": "calc", "evaluators": ["exact"]}, 404, "sums"),
        ({"dataset": "sums@1", "prompt": "ghost@1", "evaluators": ["exact"]}, 404, "ghost"),
        ({"dataset": "sums@1", "route": "calc", "evaluators": ["exact"], "concurrency": 0}, 400, "concurrency"),
    ]
    for body, status, fragment in cases:
        r = await deck.call("POST", "/api/evaluation/runs", json=body)
        assert r.status_code == status, (body, r.text)
        assert fragment in r.json()["error"]["message"], (body, r.text)
    viewer = await deck.call("POST", "/api/evaluation/runs", json=cases[0][0], who="viewer")
    assert viewer.status_code == 403
    assert (await deck.call("GET", "/api/evaluation/runs/run_nope")).status_code == 404


async def test_runs_are_visible_to_their_team_only(deck: Deck) -> None:
    await make_dataset(deck, n=3, team="blue")
    run = await run_to_end(deck, who="blue-dev", dataset="sums@1", route="calc", evaluators=["exact"])
    assert run["team_id"] == "team_blue" and run["visibility"] == "team"
    assert (await deck.call("GET", f"/api/evaluation/runs/{run['id']}", who="blue-dev")).status_code == 200
    assert (await deck.call("GET", f"/api/evaluation/runs/{run['id']}", who="red-dev")).status_code == 404
    assert run["id"] not in [
        r["id"] for r in (await deck.call("GET", "/api/evaluation/runs", who="red-dev")).json()["data"]
    ]
    assert (await deck.call("GET", f"/api/evaluation/runs/{run['id']}")).status_code == 200
    # Team blue's dataset is blue's: red may neither read it nor run it.
    refused = await deck.call(
        "POST",
        "/api/evaluation/runs",
        json={"dataset": "sums@1", "route": "calc", "evaluators": ["exact"]},
        who="red-dev",
    )
    assert refused.status_code == 404, refused.text
    # Shared by its team, the run is readable (not changeable) by red.
    path = f"/api/evaluation/runs/{run['id']}"
    assert (await deck.call("PATCH", path, json={"visibility": "shared"}, who="red-dev")).status_code == 404
    assert (await deck.call("PATCH", path, json={"visibility": "shared"}, who="blue-dev")).json()[
        "visibility"
    ] == "shared"
    assert (await deck.call("GET", path, who="red-dev")).status_code == 200
    assert (await deck.call("PATCH", path, json={"visibility": "team"}, who="red-dev")).status_code == 403
    assert (await deck.call("PATCH", path, json={"team": "red"}, who="blue-dev")).status_code == 403


async def test_a_registered_judge_prompt_grades_through_the_gateway(deck: Deck) -> None:
    await deck.call("POST", "/api/registry/prompts", json={"name": "grader"})
    grader = {
        "messages": [{"role": "user", "content": "Grade the answer {{output}} to: {{input}} (reference {{expected}})"}],
        "variables": {"input": "string", "output": "string", "expected": "string"},
    }
    assert (await deck.call("POST", "/api/registry/prompts/grader/versions", json=grader)).status_code == 201
    await deck.call("PUT", "/api/registry/prompts/grader/labels/production", json={"version": 1})
    await make_dataset(deck, n=4)
    await make_prompt(deck)
    run = await run_to_end(
        deck, dataset="sums@1", prompt="adder@1", route="calc", evaluators=["llm_judge:prompt=grader&route=calc"]
    )
    assert run["summary"]["scores"]["llm_judge"]["mean"] == 1.0, run
    judged = [t for t in deck.gateway.sink.records if t.prompt_name == "grader"]  # type: ignore[attr-defined]
    assert len(judged) == 4 and all("eval:judge" in t.tags for t in judged)
    rendered = judged[0].request_body["messages"]
    # The rendered judge prompt, then what the judge is told about the shape of its reply.
    assert len(rendered) == 2 and rendered[0]["content"].startswith("Grade the answer")
    assert judged[0].request_body["response_format"]["type"] == "json_schema"


async def test_a_judge_reply_without_a_verdict_is_an_error_on_its_row(deck: Deck) -> None:
    await deck.call("POST", "/api/registry/prompts", json={"name": "vague"})
    variables = {"input": "string", "output": "string", "expected": "string"}
    vague = {"text": "Have a look at {{output}}", "variables": variables}
    assert (await deck.call("POST", "/api/registry/prompts/vague/versions", json=vague)).status_code == 201
    await deck.call("PUT", "/api/registry/prompts/vague/labels/production", json={"version": 1})
    rows = [{"input": f"What is {i} + 1?", "expected": str(i + 1)} for i in range(3)]
    await deck.call("POST", "/api/registry/datasets/plus-one/versions", json={"rows": rows})
    run = await run_to_end(
        deck, dataset="plus-one", route="calc", evaluators=["exact", "llm_judge:prompt=vague&route=calc"]
    )
    # The fake answers the vague judge prompt with prose and no verdict: every row is an evaluator error.
    judge = run["summary"]["scores"]["llm_judge"]
    assert judge["evaluator_errors"] == judge["unscored"] == 3 and judge["mean"] == 0.0
    assert run["summary"]["scores"]["exact"]["mean"] == 1.0 and run["summary"]["errors"] == 0
    results = (await deck.call("GET", f"/api/evaluation/runs/{run['id']}/results")).json()["data"]
    for row in results:
        verdict = row["scores"]["llm_judge"]
        assert verdict["value"] is None and verdict["label"] == "evaluator_error"
        assert "no valid verdict" in verdict["explanation"]


async def test_a_run_asking_for_ray_is_refused_by_name_when_ray_is_not_configured(deck: Deck) -> None:
    await make_dataset(deck, n=3)
    r = await deck.call(
        "POST",
        "/api/evaluation/runs",
        json={"dataset": "sums@1", "route": "calc", "evaluators": ["exact"], "runner": "ray"},
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "runner" and error["code"] == "runner_not_configured"
    assert "evaluation.ray_gateway_url" in error["message"]
    assert (await deck.call("GET", "/api/evaluation/runs")).json()["data"] == []
    r = await deck.call(
        "POST",
        "/api/evaluation/runs",
        json={"dataset": "sums@1", "route": "calc", "evaluators": ["exact"], "runner": "slurm"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "runner", r.text


async def test_a_ray_run_refuses_a_model_override_by_name(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> None:
    settings = make_settings(evaluation={"ray_gateway_url": "http://127.0.0.1:9"})
    async with start_deck(settings) as deck:
        await make_dataset(deck, n=3)
        body = {"dataset": "sums@1", "route": "support", "model": "calc-bot@1", "evaluators": ["exact"]}
        r = await deck.call("POST", "/api/evaluation/runs", json={**body, "runner": "ray"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "model" and "runner 'local'" in r.json()["error"]["message"]
