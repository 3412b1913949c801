"""Three ``lmdeck serve`` replicas sharing one store and one Redis: a change made through one is served by the
others at once (Redis pub/sub), and without pub/sub at their next poll.

The store is PostgreSQL when LMDECK_TEST_POSTGRES_URL is set (``scripts/test-services.sh`` sets it), else one
SQLite file. With pub/sub the registry and the keys are reloaded every 300 s, so only a notice can explain a
replica serving the new version (or accepting a new key) within the ~10 s the test waits for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.db.scratch import scratch_database
from lmdeck.testing.servers import TEST_SETTINGS, FakeUpstreamProcess, GatewayProcess, start_gateway

MODEL = "support-bot"


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    server = os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not server:
        yield f"sqlite:///{(tmp_path / 'shared.db').as_posix()}"
        return
    with scratch_database(server) as url:
        yield url


def start_replicas(tmp_path: Path, settings: dict[str, Any], count: int = 3) -> list[GatewayProcess]:
    config = {**TEST_SETTINGS, **settings, "routes": [{"name": "bot", "targets": [f"registry:{MODEL}@production"]}]}
    replicas: list[GatewayProcess] = []
    try:
        for i in range(count):
            replicas.append(start_gateway(config, data_dir=tmp_path / f"replica{i + 1}", timeout=180))
    except BaseException:
        for gw in replicas:
            gw.stop()
        raise
    return replicas


def served_model(gw: GatewayProcess, key: str | None = None) -> str | None:
    """The upstream model one chat request through ``gw`` was served by (the fake echoes it), or None."""
    reply = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "bot", "messages": [{"role": "user", "content": "hi"}]},
        headers=gw.headers() if key is None else {"authorization": f"Bearer {key}"},
        timeout=30,
    )
    return reply.json().get("model") if reply.status_code == 200 else None


def wait_served(gw: GatewayProcess, model: str, deadline_s: float, key: str | None = None) -> None:
    deadline = time.monotonic() + deadline_s
    seen = served_model(gw, key)
    while seen != model:
        assert time.monotonic() < deadline, f"{gw.url} still serves {seen!r}, not {model!r}"
        time.sleep(0.1)
        seen = served_model(gw, key)


def register_two_versions(gw: GatewayProcess, fake: FakeUpstreamProcess) -> None:
    api = f"{gw.url}/api/registry/models"
    made = httpx.post(api, json={"name": MODEL}, headers=gw.headers(), timeout=30)
    assert made.status_code == 201, made.text
    for upstream_model in ("fake-model-one", "fake-model-two"):
        version = {"provider": "openai", "model": upstream_model, "base_url": fake.base_url}
        made = httpx.post(f"{api}/{MODEL}/versions", json=version, headers=gw.headers(), timeout=30)
        assert made.status_code == 201, made.text


def move_alias(gw: GatewayProcess, version: int) -> None:
    moved = httpx.put(
        f"{gw.url}/api/registry/models/{MODEL}/aliases/production",
        json={"version": version},
        headers=gw.headers(),
        timeout=30,
    )
    assert moved.status_code == 200, moved.text


def test_an_alias_move_on_one_replica_is_served_by_the_others_at_once(
    tmp_path: Path, store_url: str, redis_url: str, fake_upstream: FakeUpstreamProcess
) -> None:
    settings = {
        "database_url": store_url,
        "redis": {"url": redis_url},
        "registry": {"poll_interval": 300},
        "policy": {"refresh_interval": 300},
    }
    first, second, third = start_replicas(tmp_path, settings)
    try:
        register_two_versions(first, fake_upstream)
        move_alias(first, 1)
        wait_served(third, "fake-model-one", 10)
        move_alias(first, 2)
        wait_served(third, "fake-model-two", 10)
        wait_served(second, "fake-model-two", 10)
        assert served_model(first) == "fake-model-two"
        # Keys too: one made on the first replica is accepted by the third long before its 300 s refresh.
        made = httpx.post(
            f"{first.url}/api/keys",
            json={"name": "replicated", "role": "inference"},
            headers=first.headers(),
            timeout=30,
        )
        assert made.status_code in (200, 201), made.text
        wait_served(third, "fake-model-two", 10, key=made.json()["key"])
    finally:
        for gw in (first, second, third):
            gw.stop()


def test_without_pubsub_the_others_serve_it_after_their_poll(
    tmp_path: Path, store_url: str, redis_url: str, fake_upstream: FakeUpstreamProcess
) -> None:
    settings = {
        "database_url": store_url,
        "redis": {"url": redis_url, "pubsub": False},
        "registry": {"poll_interval": 0.5},
    }
    first, _, third = start_replicas(tmp_path, settings)
    try:
        register_two_versions(first, fake_upstream)
        move_alias(first, 1)
        wait_served(third, "fake-model-one", 60)
        move_alias(first, 2)
        wait_served(third, "fake-model-two", 60)
    finally:
        for gw in (first, _, third):
            gw.stop()
