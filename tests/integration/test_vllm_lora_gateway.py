"""A LoRA adapter on an OpenAI-compatible (vLLM) target, through a real ``lmdeck serve`` and the ``openai`` SDK.

The upstream is the fake, which speaks vLLM's runtime LoRA API (``/v1/load_lora_adapter``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

ADAPTER = "/adapters/support-v3"
#: Unique per run: the fake upstream (and what it has loaded) is shared by the session.
LORA = f"support-{uuid.uuid4().hex[:8]}"
REFUSED = f"refused-{uuid.uuid4().hex[:8]}"
VERSIONED = f"bot-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess) -> GatewayProcess:
    routes = [
        {
            "name": "support",
            "targets": [openai_target(fake_upstream_server, options={"adapter": ADAPTER, "lora_name": LORA})],
        },
        {
            "name": "refused",
            "targets": [openai_target(fake_upstream_server, options={"adapter": ADAPTER, "lora_name": REFUSED})],
        },
        {"name": "bot", "targets": ["registry:support-bot@production"]},
    ]
    return gateway(routes)


@pytest.fixture
def fake(fake_upstream_server: FakeUpstreamProcess) -> Iterator[FakeUpstreamProcess]:
    fake_upstream_server.reset()
    yield fake_upstream_server
    fake_upstream_server.reset()


def sdk(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=60)


def test_requests_name_the_adapter_loaded_once(gw: GatewayProcess, fake: FakeUpstreamProcess) -> None:
    client = sdk(gw)
    for _ in range(3):
        reply = client.chat.completions.create(model="support", messages=[{"role": "user", "content": "hi there"}])
        assert reply.choices[0].message.content == "hi there"
    streamed = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "a b"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "a b"
    sent = fake.requests()
    assert [r["body"] for r in sent if r["path"] == "/v1/load_lora_adapter"] == [
        {"lora_name": LORA, "lora_path": ADAPTER}
    ]
    assert {r["body"]["model"] for r in sent if r["path"] == "/v1/chat/completions"} == {LORA}
    # The trace keeps the route and the base model (what prices and usage are kept by).
    deadline = time.monotonic() + 120
    while True:
        traces = httpx.get(f"{gw.url}/api/traces", params={"route": "support"}, headers=gw.headers(), timeout=60)
        if traces.json()["data"]:
            break
        assert time.monotonic() < deadline, "no trace was stored"
        time.sleep(0.2)
    trace = traces.json()["data"][0]
    assert trace["route"] == "support" and trace["upstream_model"] == "fake-model"


def test_a_refused_load_answers_an_error_naming_the_fix(gw: GatewayProcess, fake: FakeUpstreamProcess) -> None:
    fake.configure(lora_loading=False)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gw).chat.completions.create(model="refused", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "adapter_load_failed"
    assert "--enable-lora" in error["message"] and f"--lora-modules {REFUSED}={ADAPTER}" in error["message"]
    assert not [r for r in fake.requests() if r["path"] == "/v1/chat/completions"]


def test_a_registered_version_serves_its_adapter(gw: GatewayProcess, fake: FakeUpstreamProcess) -> None:
    version = {
        "provider": "openai",
        "model": "fake-model",
        "base_url": fake.base_url,
        "adapter": ADAPTER,
        "options": {"lora_name": VERSIONED},
    }
    api = f"{gw.url}/api/registry/models"
    assert httpx.post(api, json={"name": "support-bot"}, headers=gw.headers(), timeout=30).status_code == 201
    made = httpx.post(f"{api}/support-bot/versions", json=version, headers=gw.headers(), timeout=30)
    assert made.status_code == 201, made.text
    alias = httpx.put(f"{api}/support-bot/aliases/production", json={"version": 1}, headers=gw.headers(), timeout=30)
    assert alias.status_code == 200, alias.text
    reply = sdk(gw).chat.completions.create(model="bot", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "hi"
    sent = fake.requests()
    assert [r["body"] for r in sent if r["path"] == "/v1/load_lora_adapter"] == [
        {"lora_name": VERSIONED, "lora_path": ADAPTER}
    ]
    assert [r["body"]["model"] for r in sent if r["path"] == "/v1/chat/completions"] == [VERSIONED]
