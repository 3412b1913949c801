"""The semantic cache through a real ``lmdeck serve`` with the official ``openai`` SDK.

The upstream is the FAKE upstream process: it echoes the user's text, so a semantic hit shows
itself by answering with the *first* request's words. Each test puts a random word of its own in
its texts, so the shared gateway's cache never carries one test's answers into another.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import (
    FakeUpstreamProcess,
    GatewayFactory,
    GatewayProcess,
    gateway_process,
    openai_target,
)

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "the weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    route = {
        "name": "semantic",
        "targets": [openai_target(fake_upstream, max_retries=0)],
        "cache": {"enabled": True, "semantic": {"enabled": True}},
    }
    return gateway([route], policy={"pricing": {"fake-model": {"input": "2", "output": "8"}}})


@pytest.fixture
def client(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=60)


def word() -> str:
    """A made-up name, letters only, so the term check counts it as a content word."""
    return "".join(random.choices(string.ascii_lowercase, k=9))


def chat(client: OpenAI, text: str, *, mode: str | None = None, **extra: Any) -> Any:
    headers = {"x-request-id": f"sem-{uuid.uuid4().hex}"}
    if mode is not None:
        headers["x-lmdeck-cache"] = mode
    return client.chat.completions.with_raw_response.create(
        model="semantic", messages=[{"role": "user", "content": text}], temperature=0, extra_headers=headers, **extra
    )


def test_a_paraphrase_is_answered_from_the_semantic_cache_and_a_near_miss_is_not(
    client: OpenAI, gw: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    name = word()
    before = fake_upstream.count()
    first = chat(client, f"How do I reset my password for the {name} portal?")
    assert first.headers["x-lmdeck-cache"] == "miss"
    original = first.parse()

    paraphrase = chat(client, f"What's the procedure to reset my password for the {name} portal?")
    assert paraphrase.headers["x-lmdeck-cache"] == "hit"
    answer = paraphrase.parse()
    assert answer.choices[0].message.content == original.choices[0].message.content
    assert answer.usage is not None and answer.usage.total_tokens == original.usage.total_tokens
    assert fake_upstream.count() == before + 1

    trace = gw.trace(paraphrase.http_request.headers["x-request-id"])
    source = gw.trace(first.http_request.headers["x-request-id"])
    assert trace["cache_hit"] is True and trace["cache"] == "semantic"
    assert trace["cache_source_id"] == source["id"]
    assert trace["cost_micros"] == 0 and trace["saved_micros"] == source["cost_micros"] > 0
    exposition = httpx.get(f"{gw.url}/metrics", headers=gw.headers(), timeout=10).text
    assert re.search(r'lmdeck_cache_hits_total\{cache="semantic",route="semantic",team="[^"]*"\} [1-9]', exposition)

    near_miss = chat(client, f"How do I reset my username for the {name} portal?")
    assert near_miss.headers["x-lmdeck-cache"] == "miss"
    assert name in near_miss.parse().choices[0].message.content
    assert "username" in near_miss.parse().choices[0].message.content
    assert fake_upstream.count() == before + 2


def test_a_paraphrase_streams_from_the_semantic_cache(client: OpenAI, fake_upstream: FakeUpstreamProcess) -> None:
    name = word()
    original = chat(client, f"Can dogs eat grapes from the {name} farm?").parse()
    raw = client.chat.completions.with_raw_response.create(
        model="semantic",
        messages=[{"role": "user", "content": f"Are grapes from the {name} farm safe for dogs to eat?"}],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-lmdeck-cache"] == "hit"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        original.choices[0].message.content
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == original.usage.total_tokens


def test_team_b_never_gets_team_a_semantic_entry(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    keys = []
    for _ in range(2):
        team = httpx.post(
            f"{gw.url}/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"}, headers=gw.headers(), timeout=60
        )
        assert team.status_code in (200, 201), team.text
        key = httpx.post(
            f"{gw.url}/api/keys",
            json={"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team.json()["id"]},
            headers=gw.headers(),
            timeout=60,
        )
        assert key.status_code in (200, 201), key.text
        keys.append(key.json()["key"])
    team_a, team_b = (OpenAI(base_url=gw.base_url, api_key=k, max_retries=0, timeout=60) for k in keys)
    name = word()
    assert chat(team_a, f"Which city is the capital of the {name} region?").headers["x-lmdeck-cache"] == "miss"
    paraphrase = f"What is the capital city of the {name} region?"
    assert chat(team_a, paraphrase).headers["x-lmdeck-cache"] == "hit"
    with pytest.raises(openai.APIStatusError) as refused:
        chat(team_b, paraphrase, mode="only-if-cached")
    assert refused.value.status_code == 504
    assert refused.value.body["code"] == "cache_miss"  # type: ignore[index]
    answer = chat(team_b, paraphrase)
    assert answer.headers["x-lmdeck-cache"] == "miss"
    assert "capital city" in answer.parse().choices[0].message.content  # the upstream answered team B's words


def test_a_paraphrase_with_different_tools_is_a_miss(client: OpenAI, fake_upstream: FakeUpstreamProcess) -> None:
    name = word()
    assert chat(client, f"How do I reset my password for the {name} portal?").headers["x-lmdeck-cache"] == "miss"
    paraphrase = f"What's the procedure to reset my password for the {name} portal?"
    before = fake_upstream.count()
    with_tools = chat(client, paraphrase, tools=TOOLS, tool_choice="none")
    assert with_tools.headers["x-lmdeck-cache"] == "miss"
    assert fake_upstream.count() == before + 1
    assert chat(client, paraphrase).headers["x-lmdeck-cache"] == "hit"  # without the tools it matches


def test_semantic_entries_survive_a_restart_and_a_lost_index_file(
    tmp_path: Path, fake_upstream: FakeUpstreamProcess
) -> None:
    route = {
        "name": "semantic",
        "targets": [openai_target(fake_upstream, max_retries=0)],
        "cache": {"enabled": True, "semantic": {"enabled": True}},
    }
    config = {"default_routes": False, "routes": [route]}
    name = word()
    with gateway_process(config, data_dir=tmp_path) as gw:
        client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=60)
        assert chat(client, f"How do I reset my password for the {name} portal?").headers["x-lmdeck-cache"] == "miss"
    index_dir = tmp_path / "cache-semantic.sqlite3.index"
    assert (index_dir / "manifest.json").exists()

    before = fake_upstream.count()
    with gateway_process(config, data_dir=tmp_path) as gw:
        client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=60)
        paraphrase = chat(client, f"What's the procedure to reset my password for the {name} portal?")
        assert paraphrase.headers["x-lmdeck-cache"] == "hit"
    for file in index_dir.iterdir():
        file.unlink()
    with gateway_process(config, data_dir=tmp_path) as gw:  # the index is rebuilt from the stored vectors
        client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=60)
        again = chat(client, f"Tell me how to reset my password for the {name} portal.")
        assert again.headers["x-lmdeck-cache"] == "hit"
    assert fake_upstream.count() == before
