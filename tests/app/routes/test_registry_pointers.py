"""The pointer routes, written once (:func:`pointer_router`) and served for models and prompts in each
kind's words: ``aliases``/``?alias=`` and ``labels``/``?label=``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.app.routes.registry_models import MODELS
from lmdeck.app.routes.registry_models import router as models_router
from lmdeck.app.routes.registry_prompts import PROMPTS
from lmdeck.app.routes.registry_prompts import router as prompts_router
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink


def routes(router: Any) -> dict[str, tuple[str, str]]:
    return {r.name: (next(iter(r.methods)), r.path) for r in router.routes if isinstance(r, APIRoute)}


def test_each_kind_gets_the_same_routes_in_its_own_words() -> None:
    models, prompts = routes(models_router), routes(prompts_router)
    assert models["move_alias"] == ("PUT", "/api/registry/models/{name}/aliases/{alias}")
    assert models["rollback_alias"] == ("POST", "/api/registry/models/{name}/aliases/{alias}/rollback")
    assert models["create_model_version"] == ("POST", "/api/registry/models/{name}/versions")
    assert prompts["remove_label"] == ("DELETE", "/api/registry/prompts/{name}/labels/{label}")
    assert prompts["prompt_history"] == ("GET", "/api/registry/prompts/{name}/history")
    shared = {name.replace("model", "KIND").replace("alias", "POINTER") for name in models}
    assert shared <= {name.replace("prompt", "KIND").replace("label", "POINTER") for name in prompts}
    assert set(prompts) - {n.replace("model", "prompt").replace("alias", "label") for n in models} == {
        "resolve_prompt",
        "render_prompt",
        "diff_prompt",
    }
    assert (MODELS.word, MODELS.plural, PROMPTS.word, PROMPTS.plural) == ("alias", "aliases", "label", "labels")


@pytest.mark.parametrize(
    ("collection", "plural", "word", "version"),
    [
        ("models", "aliases", "alias", {"provider": "openai", "model": "upstream-1"}),
        ("prompts", "labels", "label", {"text": "Hello {{ who }}", "variables": {"who": "string"}}),
    ],
)
async def test_a_pointer_moves_rolls_back_and_filters_its_history(
    tmp_path: Path, collection: str, plural: str, word: str, version: dict[str, Any]
) -> None:
    gateway = build_gateway(
        Settings(data_dir=tmp_path, default_routes=False), sink=MemoryTraceSink(), announce_admin_key=False
    )
    _, key = gateway.policy.identities.create_key("admin", "admin")
    gateway.policy.keys.load()
    auth = {"authorization": f"Bearer {key}"}
    base = f"/api/registry/{collection}"
    async with in_process_client(create_app(gateway=gateway)) as client:
        assert (await client.post(base, json={"name": "bot"}, headers=auth)).status_code == 201
        for _ in (1, 2):
            created = await client.post(f"{base}/bot/versions", json=version, headers=auth)
            assert created.status_code == 201, created.text
        for target in (1, 2):
            moved = await client.put(f"{base}/bot/{plural}/prod", json={"version": target}, headers=auth)
            assert moved.status_code == 200 and moved.json()["to_version"] == target
        await client.put(f"{base}/bot/{plural}/staging", json={"version": 1}, headers=auth)
        stale = await client.put(f"{base}/bot/{plural}/prod", json={"version": 1, "expected_version": 1}, headers=auth)
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
        back = await client.post(f"{base}/bot/{plural}/prod/rollback", json={"reason": "errors"}, headers=auth)
        assert (back.json()["from_version"], back.json()["to_version"]) == (2, 1)
        removed = await client.delete(f"{base}/bot/{plural}/staging", params={"expected_version": 1}, headers=auth)
        assert removed.status_code == 200 and removed.json()["to_version"] is None

        history = await client.get(f"{base}/bot/history", params={word: "prod"}, headers=auth)
        assert [(m[word], m["action"]) for m in history.json()["data"]] == [
            ("prod", "rollback"),
            ("prod", "move"),
            ("prod", "move"),
        ]
        shown = (await client.get(f"{base}/bot", headers=auth)).json()
        assert shown[plural] == {"prod": 1}
        listed = (await client.get(base, headers=auth)).json()["data"]
        assert [(e["name"], e[plural]) for e in listed] == [("bot", {"prod": 1})]
