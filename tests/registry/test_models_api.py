"""The model registry through its API, and a route that follows an alias live."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from .conftest import Deck


async def register_versions(deck: Deck) -> None:
    for model, params in (("m-1", {}), ("m-2", {"temperature": 0.3})):
        r = await deck.client.post(
            "/api/registry/models/support-bot/versions",
            json={
                "provider": "fake",
                "model": model,
                "parameters": params,
                "metrics": {"accuracy": 0.9},
                "lineage": {"dataset": "tickets@1", "training_job": "job-7"},
            },
            headers=deck.auth("developer"),
        )
        assert r.status_code == 201, r.text


async def move(deck: Deck, version: int, role: str = "admin", alias: str = "production") -> dict[str, Any]:
    r = await deck.client.put(
        f"/api/registry/models/support-bot/aliases/{alias}",
        json={"version": version, "reason": f"ship v{version}"},
        headers=deck.auth(role),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def served_by(response_json: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(response_json["choices"][0]["message"]["content"])
    return content


async def test_versions_aliases_and_roles(deck: Deck) -> None:
    await register_versions(deck)
    shown = (await deck.client.get("/api/registry/models/support-bot", headers=deck.auth("viewer"))).json()
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["versions"][0]["lineage"] == {"dataset": "tickets@1", "training_job": "job-7", "parent_version": None}
    forbidden = await deck.client.put(
        "/api/registry/models/support-bot/aliases/production", json={"version": 1}, headers=deck.auth("developer")
    )
    assert forbidden.status_code == 403 and "admin" in forbidden.json()["error"]["message"]
    viewer = await deck.client.put(
        "/api/registry/models/support-bot/aliases/staging", json={"version": 1}, headers=deck.auth("viewer")
    )
    assert viewer.status_code == 403
    assert (await move(deck, 2, role="developer", alias="staging"))["changed"]
    assert (await move(deck, 1))["to_version"] == 1
    assert (await move(deck, 1))["changed"] is False
    listed = (await deck.client.get("/api/registry/models", headers=deck.auth("viewer"))).json()["data"]
    assert listed[0]["aliases"] == {"production": 1, "staging": 2}


async def test_bad_input_is_a_4xx_in_openai_shape(deck: Deck) -> None:
    cases = [
        ("post", "/api/registry/models/support-bot/versions", {"provider": "fake"}),
        ("post", "/api/registry/models/support-bot/versions", {"provider": "nope", "model": "x"}),
        ("post", "/api/registry/models/support-bot/versions", {"provider": "registry", "model": "a@b"}),
        ("post", "/api/registry/models/bad name/versions", {"provider": "fake", "model": "x"}),
        ("put", "/api/registry/models/ghost/aliases/production", {"version": 1}),
        ("put", "/api/registry/models/support-bot/aliases/production", {"version": "one"}),
        ("get", "/api/registry/models/support-bot/versions/abc", None),
        ("post", "/api/registry/models/support-bot/aliases/production/rollback", {}),
    ]
    for method, path, body in cases:
        r = await deck.client.request(method, path, json=body, headers=deck.auth())
        assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
        assert set(r.json()["error"]) >= {"message", "type", "code", "param"}, r.text


async def test_unresolved_alias_is_a_404_that_says_what_to_do(deck: Deck) -> None:
    r = await deck.chat(model="support", messages=[{"role": "user", "content": "hi"}])
    assert r.status_code == 404 and "lmdeck models register support-bot" in r.json()["error"]["message"]


async def test_a_version_that_cannot_be_built_is_a_503_naming_why(deck: Deck) -> None:
    spec = {"provider": "fake", "model": "m", "api_key": {"$env": "LMDECK_REGISTRY_TEST_UNSET_KEY"}}
    await deck.client.post("/api/registry/models/support-bot/versions", json=spec, headers=deck.auth())
    await move(deck, 1)
    r = await deck.chat(model="support", messages=[{"role": "user", "content": "hi"}])
    assert r.status_code == 503, r.text
    assert "LMDECK_REGISTRY_TEST_UNSET_KEY" in r.json()["error"]["message"]


async def test_version_parameters_fill_unset_request_fields(deck: Deck) -> None:
    await register_versions(deck)
    await move(deck, 2)
    r = await deck.chat(model="support", messages=[{"role": "user", "content": "hi"}])
    assert served_by(r.json()) == {"model": "m-2", "temperature": 0.3, "messages": [{"role": "user", "content": "hi"}]}
    r = await deck.chat(model="support", temperature=1.5, messages=[{"role": "user", "content": "hi"}])
    assert served_by(r.json())["temperature"] == 1.5


async def test_alias_move_under_load_switches_live_without_a_failed_request(deck: Deck) -> None:
    await register_versions(deck)
    await move(deck, 1)
    results: list[tuple[float, float, str, str | None, int]] = []
    stop = asyncio.Event()

    async def one(i: int) -> None:
        started = time.monotonic()
        body = {"model": "support", "messages": [{"role": "user", "content": f"q{i}"}], "stream": i % 2 == 1}
        r = await deck.client.post("/v1/chat/completions", json=body, headers=deck.auth("inference"))
        if body["stream"]:
            text = "".join(
                json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                for line in r.text.splitlines()
                if line.startswith("data: {")
            )
            complete = r.text.rstrip().endswith("data: [DONE]")
            model = json.loads(text)["model"] if complete else "incomplete"
        else:
            model = served_by(r.json())["model"] if r.status_code == 200 else "failed"
        results.append((started, time.monotonic(), model, r.headers.get("x-request-id"), r.status_code))

    async def worker(w: int) -> None:
        i = 0
        while not stop.is_set():
            await one(w * 10_000 + i)
            i += 1

    async def served_since(moment: float, count: int = 10) -> None:
        """Wait until ``count`` requests that started after ``moment`` have finished (not a wall-clock window)."""
        async with asyncio.timeout(120):
            while sum(1 for start, *_ in results if start > moment) < count:
                await asyncio.sleep(0.01)

    workers = [asyncio.create_task(worker(w)) for w in range(8)]
    await served_since(0.0)
    move_started = time.monotonic()
    await move(deck, 2)
    moved_at = time.monotonic()
    await served_since(moved_at)
    rollback_started = time.monotonic()
    rollback = await deck.client.post(
        "/api/registry/models/support-bot/aliases/production/rollback",
        json={"reason": "errors went up"},
        headers=deck.auth("admin"),
    )
    rolled_back_at = time.monotonic()
    assert rollback.status_code == 200 and (rollback.json()["from_version"], rollback.json()["to_version"]) == (2, 1)
    await served_since(rolled_back_at)
    stop.set()
    await asyncio.gather(*workers)

    assert len(results) >= 30
    assert all(status == 200 for *_, status in results), [r for r in results if r[-1] != 200][:3]
    assert "failed" not in {m for _, _, m, _, _ in results} and "incomplete" not in {m for _, _, m, _, _ in results}
    before = [m for start, end, m, _, _ in results if end < move_started]
    # Requests wholly between the move's end and the rollback's start; one in flight while the rollback
    # runs may be served by either version.
    during_v2 = [m for start, end, m, _, _ in results if start > moved_at and end < rollback_started]
    after = [m for start, _, m, _, _ in results if start > rolled_back_at]
    assert before and set(before) == {"m-1"}
    assert during_v2 and set(during_v2) == {"m-2"}
    assert after and set(after) == {"m-1"}

    history = await deck.client.get(
        "/api/registry/models/support-bot/history", params={"alias": "production"}, headers=deck.auth("viewer")
    )
    moves = [(h["action"], h["from_version"], h["to_version"], h["actor"]) for h in history.json()["data"]]
    assert moves == [
        ("rollback", 2, 1, "key:key_admin"),
        ("move", 1, 2, "key:key_admin"),
        ("move", None, 1, "key:key_admin"),
    ]
    audit = deck.gateway.policy.audit
    entries = [(e.action, e.target) for e in audit.entries(limit=1000) if e.target.startswith("model:")]
    assert ("model.alias.moved", "model:support-bot@production") in entries
    assert ("model.alias.rolled_back", "model:support-bot@production") in entries
    assert audit.verify().ok


async def test_each_trace_names_the_version_that_served_it(deck: Deck) -> None:
    await register_versions(deck)
    await move(deck, 1)

    async def ask(i: int) -> tuple[str, str]:
        r = await deck.chat(role="inference", model="support", messages=[{"role": "user", "content": f"n{i}"}])
        return r.headers["x-request-id"], served_by(r.json())["model"]

    # One request wholly before the move, so version 1 serves at least one whatever the machine's speed;
    # the 40 in flight during the move may be served by either version.
    first = await ask(-1)
    tasks = [asyncio.create_task(ask(i)) for i in range(40)]
    await asyncio.sleep(0)
    await move(deck, 2)
    tasks += [asyncio.create_task(ask(i)) for i in range(40, 60)]
    served = dict([first, *await asyncio.gather(*tasks)])
    assert set(served.values()) == {"m-1", "m-2"}
    await deck.gateway.registry.bundles.drain()
    bundles: dict[str, Any] = {}
    for trace in deck.sink.records:
        if trace.request_id not in served:
            continue
        if trace.bundle_hash not in bundles:
            r = await deck.client.get(f"/api/registry/bundles/{trace.bundle_hash}", headers=deck.auth("viewer"))
            bundles[trace.bundle_hash] = r.json()
        version = bundles[trace.bundle_hash]["models"]["support-bot@production"]["version"]
        assert f"m-{version}" == served[trace.request_id]
    assert len(bundles) == 2
