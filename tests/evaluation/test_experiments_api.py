"""A/B experiments through the gateway in process: sticky variants, statistics, verdict, promotion."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from lmdeck.db import Database
from lmdeck.evaluation.runtime import EvaluationRuntime
from lmdeck.settings import ConfigError, Settings

from .conftest import Deck

QUESTION = re.compile(r"(-?\d+) \+ (-?\d+)")


async def register_calc_bot(deck: Deck) -> None:
    assert (await deck.call("POST", "/api/registry/models", json={"name": "calc-bot"})).status_code == 201
    for model in ("careless", "careful"):
        r = await deck.call(
            "POST", "/api/registry/models/calc-bot/versions", json={"provider": "arith", "model": model}
        )
        assert r.status_code == 201, r.text
    r = await deck.call("PUT", "/api/registry/models/calc-bot/aliases/production", json={"version": 1})
    assert r.status_code == 200, r.text


async def ask(deck: Deck, user: str, i: int) -> tuple[str, bool, str]:
    a, b = 10 + i, 3 * i
    r = await deck.chat(model="support", user=user, messages=[{"role": "user", "content": f"What is {a} + {b}?"}])
    assert r.status_code == 200, r.text
    answer = r.json()["choices"][0]["message"]["content"]
    return r.headers["x-lmdeck-experiment"], answer == str(a + b), r.headers["x-request-id"]


async def test_model_experiment_sticky_verdict_and_promotion(deck: Deck) -> None:
    await register_calc_bot(deck)
    spec = {
        "name": "careful-bot",
        "route": "support",
        "metric": "feedback:correct",
        "min_samples": 20,
        "variants": [{"name": "control", "weight": 1}, {"name": "careful", "weight": 1, "model": "calc-bot@2"}],
    }
    r = await deck.call("POST", "/api/experiments", json=spec, who="developer")
    assert r.status_code == 201, r.text
    seen: dict[str, set[str]] = {}
    for i in range(240):
        user = f"user-{i % 80}"
        header, correct, request_id = await ask(deck, user, i)
        seen.setdefault(user, set()).add(header)
        feedback = {"trace_id": request_id, "name": "correct", "value": correct, "source": "user"}
        posted = await deck.call("POST", "/api/feedback", json=feedback, who="inference")
        assert posted.status_code == 201, posted.text
    assert all(len(headers) == 1 for headers in seen.values()), "a user changed variant"
    variants = {h.split("=")[1] for hs in seen.values() for h in hs}
    assert variants == {"control", "careful"}
    await deck.evaluation.exposures.queue.join()

    shown = (await deck.call("GET", "/api/experiments/careful-bot", who="viewer")).json()
    stats = {v["name"]: v for v in shown["variants"]}
    assert stats["control"]["requests"] + stats["careful"]["requests"] == 240
    assert stats["careful"]["feedback"]["correct"]["mean"] == 1.0
    assert stats["control"]["feedback"]["correct"]["mean"] < 0.9
    verdict = shown["verdict"]
    assert verdict["status"] == "winner" and verdict["winner"] == "careful", verdict
    assert "p=" in verdict["evidence"][0]

    # Production is admin-only by default in the registry: a developer may not promote into it.
    refused = await deck.call("POST", "/api/experiments/careful-bot/promote", json={}, who="developer")
    assert refused.status_code == 403, refused.text
    promoted = await deck.call("POST", "/api/experiments/careful-bot/promote", json={"reason": "fewer mistakes"})
    assert promoted.status_code == 200, promoted.text
    body = promoted.json()
    assert body["status"] == "stopped" and body["outcome"]["promoted"] == "careful"
    assert body["outcome"]["moves"][0]["to_version"] == 2

    history = (await deck.call("GET", "/api/registry/models/calc-bot/history")).json()
    assert history["data"][0]["to_version"] == 2 and "fewer mistakes" in history["data"][0]["reason"]
    audit = deck.gateway.policy.audit
    actions = [e.action for e in audit.entries(limit=1000)]
    assert "experiment.created" in actions and "experiment.promoted" in actions

    # Stopped: no more assignment, and the alias now serves the careful version to everyone.
    r = await deck.chat(model="support", user="user-1", messages=[{"role": "user", "content": "What is 5 + 7?"}])
    assert "x-lmdeck-experiment" not in r.headers
    assert r.json()["choices"][0]["message"]["content"] == "12"


async def test_prompt_experiment_rewrites_the_version_and_keeps_pinned_requests_out(deck: Deck) -> None:
    await deck.call("POST", "/api/registry/prompts", json={"name": "adder"})
    for text in ("What is {{a}} + {{b}}?", "Add {{a}} to {{b}}."):
        spec = {"messages": [{"role": "user", "content": text}], "variables": {"a": "integer", "b": "integer"}}
        assert (await deck.call("POST", "/api/registry/prompts/adder/versions", json=spec)).status_code == 201
    await deck.call("PUT", "/api/registry/prompts/adder/labels/production", json={"version": 1})
    spec = {
        "name": "wording",
        "prompt": "adder",
        "variants": [
            {"name": "v1", "weight": 1, "prompt_version": 1},
            {"name": "v2", "weight": 1, "prompt_version": 2},
        ],
    }
    assert (await deck.call("POST", "/api/experiments", json=spec)).status_code == 201
    answers: dict[str, set[str]] = {}
    traces: list[Any] = []
    for i in range(40):
        prompt = {"name": "adder", "variables": {"a": 2, "b": 3}}
        r = await deck.chat(model="calc", user=f"u{i}", prompt=prompt)
        assert r.status_code == 200, r.text
        answers.setdefault(r.headers["x-lmdeck-experiment"], set()).add(r.json()["choices"][0]["message"]["content"])
    assert answers == {"wording=v1": {"5"}, "wording=v2": {"I do not know."}}
    pinned = await deck.chat(
        model="calc", user="u1", prompt={"name": "adder", "version": 2, "variables": {"a": 1, "b": 1}}
    )
    assert "x-lmdeck-experiment" not in pinned.headers
    traces = [t for t in deck.gateway.sink.records if t.metadata.get("experiment") == "wording"]  # type: ignore[attr-defined]
    assert {(t.metadata["variant"], t.prompt_version) for t in traces} == {("v1", 1), ("v2", 2)}


async def test_conversation_stickiness_and_conflicts(deck: Deck) -> None:
    spec = {
        "name": "routes",
        "route": "calc",
        "sticky": "conversation",
        "variants": [{"name": "calc", "weight": 1}, {"name": "sloppy", "weight": 1, "route": "sloppy"}],
    }
    assert (await deck.call("POST", "/api/experiments", json=spec)).status_code == 201
    again = await deck.call("POST", "/api/experiments", json={**spec, "name": "routes-2"})
    assert again.status_code == 409 and "already running" in again.json()["error"]["message"]
    for conversation in ("c1", "c2", "c3", "c4"):
        headers = set()
        for _ in range(5):
            r = await deck.chat(
                headers={"x-lmdeck-conversation-id": conversation},
                model="calc",
                messages=[{"role": "user", "content": "What is 1 + 1?"}],
            )
            headers.add(r.headers["x-lmdeck-experiment"])
        assert len(headers) == 1
    stopped = await deck.call("POST", "/api/experiments/routes/stop", who="developer")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert (await deck.call("POST", "/api/experiments/routes/stop")).status_code == 409


async def test_experiment_errors_are_4xx(deck: Deck) -> None:
    bad = await deck.call("POST", "/api/experiments", json={"name": "x", "route": "calc", "variants": []})
    assert bad.status_code == 400 and bad.json()["error"]["message"]
    missing = await deck.call("GET", "/api/experiments/nope")
    assert missing.status_code == 404
    no_model = {
        "name": "ghost",
        "route": "support",
        "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "model": "ghost-bot@3"}],
    }
    r = await deck.call("POST", "/api/experiments", json=no_model)
    assert r.status_code == 404 and "ghost-bot" in r.json()["error"]["message"]
    viewer = await deck.call("POST", "/api/experiments", json=no_model, who="viewer")
    assert viewer.status_code == 403
    await asyncio.sleep(0)


async def test_experiments_from_the_config_file_start_once(
    make_settings: Callable[..., Settings], start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]]
) -> None:
    declared = {"name": "cfg", "route": "calc", "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
    settings = make_settings(evaluation={"experiments": [declared]})
    async with start_deck(settings) as deck:
        listed = (await deck.call("GET", "/api/experiments")).json()["data"]
        assert [(e["name"], e["status"], e["created_by"]) for e in listed] == [("cfg", "running", "config")]
        r = await deck.chat(model="calc", user="ada", messages=[{"role": "user", "content": "What is 1 + 1?"}])
        assert r.headers["x-lmdeck-experiment"].startswith("cfg=")


def test_a_bad_declared_experiment_names_its_place(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(evaluation={"experiments": [{"name": "cfg", "route": "calc", "variants": []}]})
    with pytest.raises(ConfigError, match=r"evaluation.experiments\[0\].variants"):
        EvaluationRuntime(settings, Database("sqlite:///:memory:"), None)
