"""Eval runs through the gateway in process: start, progress, results, compare, gate."""

from __future__ import annotations

import asyncio
from typing import Any

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


async def make_dataset(deck: Deck, name: str = "sums", n: int = 40) -> None:
    rows = [{"input": {"a": i, "b": 2 * i + 1}, "expected": str(3 * i + 1)} for i in range(n)]
    r = await deck.call("POST", f"/api/registry/datasets/{name}/versions", json={"rows": rows})
    assert r.status_code in (200, 201), r.text


async def run_to_end(deck: Deck, **body: Any) -> dict[str, Any]:
    r = await deck.call("POST", "/api/evaluation/runs", json=body)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    for _ in range(400):
        run = (await deck.call("GET", f"/api/evaluation/runs/{run_id}")).json()
        if run["status"] != "running":
            return run
        await asyncio.sleep(0.02)
    raise AssertionError("the run did not finish")


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
