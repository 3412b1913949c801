"""Every trace carries a bundle hash, and changing any live part of the configuration changes it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from lmdeck.settings import Settings

from .conftest import Deck


async def last_hash(deck: Deck, **body: object) -> str:
    r = await deck.chat(**body)
    assert r.status_code == 200, r.text
    bundle_hash = deck.sink.records[-1].bundle_hash
    assert bundle_hash
    return bundle_hash


async def test_bundle_hash_follows_every_part_of_the_live_configuration(deck: Deck) -> None:
    ask = {"model": "support", "messages": [{"role": "user", "content": "hi"}]}
    auth = deck.auth()
    for model in ("m-1", "m-2"):
        await deck.client.post(
            "/api/registry/models/support-bot/versions", json={"provider": "fake", "model": model}, headers=auth
        )
    await deck.client.put("/api/registry/models/support-bot/aliases/production", json={"version": 1}, headers=auth)
    await deck.client.post(
        "/api/registry/prompts/p/versions",
        json={"text": "v1 {{ x }}", "variables": {"x": "string"}, "route": "support"},
        headers=auth,
    )
    await deck.client.post(
        "/api/registry/prompts/p/versions", json={"text": "v2 {{ x }}", "variables": {"x": "string"}}, headers=auth
    )
    await deck.client.put("/api/registry/prompts/p/labels/production", json={"version": 1}, headers=auth)

    plain = await last_hash(deck, model="plain", messages=[{"role": "user", "content": "hi"}])
    base = await last_hash(deck, **ask)
    assert base == await last_hash(deck, **ask) and base != plain
    with_prompt = await last_hash(deck, model="support", prompt={"name": "p", "variables": {"x": "1"}})
    assert with_prompt != base

    await deck.client.put("/api/registry/models/support-bot/aliases/production", json={"version": 2}, headers=auth)
    moved = await last_hash(deck, **ask)
    assert moved != base
    await deck.client.put("/api/registry/models/support-bot/aliases/staging", json={"version": 2}, headers=auth)
    assert await last_hash(deck, **ask) == moved  # an alias the route does not use is not part of its bundle

    await deck.client.put("/api/registry/prompts/p/labels/production", json={"version": 2}, headers=auth)
    prompt_moved = await last_hash(deck, model="support", prompt={"name": "p", "variables": {"x": "1"}})
    assert prompt_moved not in (with_prompt, moved)

    route_change = {"routes": [{"name": "support", "targets": ["registry:support-bot@production"], "description": "x"}]}
    assert (await deck.client.post("/api/registry/apply", json=route_change, headers=auth)).status_code == 200
    assert await last_hash(deck, **ask) not in (base, moved)

    await deck.gateway.registry.bundles.drain()
    r = await deck.client.get(f"/api/registry/bundles/{moved}", headers=deck.auth("viewer"))
    assert r.json()["models"]["support-bot@production"]["version"] == 2
    assert r.json()["routes"]["support"]["targets"][0]["model"] == "support-bot@production"
    assert (await deck.client.get("/api/registry/bundles/nope", headers=deck.auth("viewer"))).status_code == 404


async def test_failed_requests_carry_the_bundle_too(deck: Deck) -> None:
    r = await deck.chat(model="support", messages=[{"role": "user", "content": "hi"}])
    assert r.status_code == 404
    assert deck.sink.records[-1].bundle_hash


async def test_another_gateway_on_the_same_store_sees_moves_by_polling(
    make_settings: Callable[..., Settings],
    start_deck: Callable[[Settings], AbstractAsyncContextManager[Deck]],
) -> None:
    settings = make_settings()
    async with start_deck(settings) as first, start_deck(settings) as second:
        auth = first.auth()
        for model in ("m-1", "m-2"):
            await first.client.post(
                "/api/registry/models/support-bot/versions", json={"provider": "fake", "model": model}, headers=auth
            )
        await first.client.put("/api/registry/models/support-bot/aliases/production", json={"version": 2}, headers=auth)
        hi = [{"role": "user", "content": "hi"}]
        deadline = time.monotonic() + 60  # generous: the poll interval, stretched by a loaded machine
        while (r := await second.chat(model="support", messages=hi)).status_code != 200:
            assert time.monotonic() < deadline, f"the second gateway never saw the move: {r.text}"
            await asyncio.sleep(0.05)
        assert json.loads(r.json()["choices"][0]["message"]["content"])["model"] == "m-2"
