"""Two ``lmdeck serve`` replicas on one store and one real Redis share the exact cache and the breakers.

Gateways A and B point at the same store (a SQLite file) and the same ``redis.url``, each with its own
data directory. An answer A paid for is a hit on B (the fake upstream is asked once), and a breaker
that failures through A opened is open on B: B answers 503 ``circuit_open`` without asking the upstream.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import APIStatusError, OpenAI

from lmdeck.testing.servers import (
    TEST_ADMIN_KEY,
    TEST_SETTINGS,
    FakeUpstreamProcess,
    GatewayProcess,
    openai_target,
    start_fake_upstream,
    start_gateway,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[tuple[FakeUpstreamProcess, GatewayProcess, GatewayProcess]]:
    fake = start_fake_upstream(log_dir=tmp_path)
    config: dict[str, Any] = {
        **TEST_SETTINGS,
        "database_url": f"sqlite:///{tmp_path}/store.db",
        # A generous command timeout: a slow machine must not read as Redis being down.
        "redis": {"url": redis_url, "timeout": 10},
        "breaker": {"failure_threshold": 2, "reset_timeout": 3600},
        "routes": [
            {"name": "cached", "targets": [openai_target(fake, max_retries=0)], "cache": {"enabled": True}},
            {"name": "flaky", "targets": [openai_target(fake, "flaky-model", max_retries=0)]},
        ],
    }
    gateways: list[GatewayProcess] = []
    try:
        for name in ("a", "b"):
            gateways.append(start_gateway(config, data_dir=tmp_path / name, admin_key=TEST_ADMIN_KEY, timeout=180))
        yield fake, gateways[0], gateways[1]
    finally:
        for gw in gateways:
            gw.stop()
        fake.stop()


def client_for(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=60)


def test_replicas_share_the_exact_cache_and_the_breakers(
    replicas: tuple[FakeUpstreamProcess, GatewayProcess, GatewayProcess],
) -> None:
    fake, a, b = replicas
    text = f"what is the answer to question {uuid.uuid4().hex[:8]}"
    messages: Any = [{"role": "user", "content": text}]

    first = client_for(a).chat.completions.with_raw_response.create(model="cached", messages=messages, temperature=0)
    assert first.headers["x-lmdeck-cache"] == "miss"
    asked = fake.count()
    again = client_for(b).chat.completions.with_raw_response.create(model="cached", messages=messages, temperature=0)
    assert again.headers["x-lmdeck-cache"] == "hit"
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert fake.count() == asked  # B answered from what A stored

    fake.configure(script=[500, 500])
    for _ in range(2):
        with pytest.raises(APIStatusError) as failed:
            client_for(a).chat.completions.create(model="flaky", messages=messages)
        assert failed.value.status_code in (500, 502)
    asked = fake.count()
    with pytest.raises(APIStatusError) as refused:
        client_for(b).chat.completions.create(model="flaky", messages=messages)
    assert refused.value.status_code == 503 and "circuit open" in refused.value.message
    assert fake.count() == asked  # B never sent it upstream
