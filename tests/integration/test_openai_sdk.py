"""The official ``openai`` client against a real ``lmdeck serve`` in front of the fake upstream."""

from __future__ import annotations

from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, openai_target


def client_for(gateway: GatewayFactory, fake: FakeUpstreamProcess) -> OpenAI:
    gw = gateway([{"name": "chat", "targets": [openai_target(fake)]}])
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=10)


def test_chat_non_stream(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> None:
    client = client_for(gateway, fake_upstream)
    reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello there"}])
    assert reply.choices[0].message.content == "hello there"
    assert reply.usage is not None and reply.usage.total_tokens == 4
    assert fake_upstream.count() == 1
