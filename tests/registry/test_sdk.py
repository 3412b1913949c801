"""The Python client's registry calls against a real server on loopback, and the prompt cache."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import openai
import pytest

from lmdeck.registry.templates import PromptRenderError
from lmdeck.sdk import Client, LMDeckError

from .conftest import LiveServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_for_refresh(client: Client) -> None:
    deadline = time.monotonic() + 10
    while client.prompts._refreshing and time.monotonic() < deadline:
        time.sleep(0.01)


def test_prompt_label_move_is_seen_by_the_cache_within_its_ttl(live_server: LiveServer) -> None:
    admin = Client(live_server.base_url, live_server.keys["admin"])
    admin.prompts.create("greet", text="Hello {{ name }}", variables={"name": "string"}, commit_message="v1")
    admin.prompts.create("greet", text="Hi {{ name }}!", variables={"name": "string"}, commit_message="v2")
    admin.prompts.label("greet", "production", 1)

    app = Client(live_server.base_url, live_server.keys["viewer"])
    clock = FakeClock()
    app.prompts.clock = clock
    app.prompts.cache_ttl = 30
    assert app.prompts.get("greet").render(name="Ada") == "Hello Ada"

    admin.prompts.label("greet", "production", 2, reason="friendlier")
    clock.now += 29
    assert app.prompts.get("greet").version == 1  # fresh: served from the cache, no call
    clock.now += 2
    assert app.prompts.get("greet").version == 1  # stale: served at once, refreshed behind
    wait_for_refresh(app)
    prompt = app.prompts.get("greet")
    assert prompt.version == 2 and prompt.render({"name": "Ada"}) == "Hi Ada!"
    assert app.prompts.get("greet", version=1).render(name="Ada") == "Hello Ada"


class SwitchableTransport(httpx.BaseTransport):
    """A real HTTP transport that a test can cut, as if the server went away."""

    def __init__(self) -> None:
        self.down = False
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return self.inner.handle_request(request)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_fallback_and_stale_copies_when_the_server_is_gone(live_server: LiveServer) -> None:
    nowhere = Client(f"http://127.0.0.1:{free_port()}", "sk-none", timeout=2)
    with pytest.raises(LMDeckError, match="cannot reach lmdeck"):
        nowhere.prompts.get("greet")
    fallback = nowhere.prompts.get("greet", fallback="Hello {{ name }} (offline)")
    assert fallback.is_fallback and fallback.render(name="Ada") == "Hello Ada (offline)"
    with pytest.raises(PromptRenderError, match="missing variable: name"):
        fallback.render()

    admin = Client(live_server.base_url, live_server.keys["admin"])
    admin.prompts.create("greet", text="Hello {{ name }}", variables={"name": "string"})
    admin.prompts.label("greet", "production", 1)
    link = SwitchableTransport()
    app = Client(live_server.base_url, live_server.keys["viewer"], transport=link)
    clock = FakeClock()
    app.prompts.clock = clock
    assert app.prompts.get("greet", cache_ttl=5).version == 1
    link.down = True
    clock.now += 60
    assert app.prompts.get("greet", cache_ttl=5).version == 1
    wait_for_refresh(app)
    assert app.prompts.get("greet", cache_ttl=5).version == 1


def test_models_through_the_client(live_server: LiveServer) -> None:
    client = Client(live_server.base_url, live_server.keys["admin"])
    client.models.register("support-bot", "answers tickets")
    v1 = client.models.create_version("support-bot", provider="fake", model="m-1", metrics={"accuracy": 0.8})
    v2 = client.models.create_version("support-bot", provider="fake", model="m-2", lineage={"parent_version": 1})
    assert (v1["version"], v2["version"]) == (1, 2)
    client.models.alias("support-bot", "production", 1, reason="first")
    client.models.alias("support-bot", "production", 2, reason="better")
    back = client.models.rollback("support-bot", "production", reason="worse in prod")
    assert (back["from_version"], back["to_version"]) == (2, 1)
    assert [m["reason"] for m in client.models.history("support-bot")] == ["worse in prod", "better", "first"]
    assert client.models.get("support-bot")["aliases"] == {"production": 1}
    assert client.models.list()[0]["description"] == "answers tickets"
    with pytest.raises(LMDeckError) as info:
        Client(live_server.base_url, live_server.keys["viewer"]).models.alias("support-bot", "staging", 1)
    assert info.value.status == 403


def test_datasets_through_the_client(live_server: LiveServer, tmp_path: Path) -> None:
    client = Client(live_server.base_url, live_server.keys["developer"])
    path = tmp_path / "evals.jsonl"
    path.write_text('{"input": "2+2", "expected": "4"}\n\n{"input": "3+3", "expected": "6", "metadata": {"k": 1}}\n')
    first = client.datasets.upload("evals", path)
    again = client.datasets.upload("evals", path)
    assert first["created"] and not again["created"] and again["version"] == first["version"] == 1
    rows = list(client.datasets.rows("evals", first["digest"][:10], page_size=1))
    assert [r["expected"] for r in rows] == ["4", "6"] and rows[1]["metadata"] == {"k": 1}
    path.write_text('{"input": "x"}\nnot json\n')
    with pytest.raises(LMDeckError, match=r"evals\.jsonl:2"):
        client.datasets.upload("evals", path)


def test_openai_sdk_sends_a_prompt_in_extra_body(live_server: LiveServer) -> None:
    admin = Client(live_server.base_url, live_server.keys["admin"])
    admin.prompts.create("ask", text="Question: {{ q }}", variables={"q": "string"}, route="plain")
    admin.prompts.label("ask", "production", 1)
    oai = openai.OpenAI(base_url=f"{live_server.base_url}/v1", api_key=live_server.keys["inference"], max_retries=0)
    completion = oai.chat.completions.create(
        model="", messages=[], extra_body={"prompt": {"name": "ask", "variables": {"q": "why?"}}}
    )
    seen = json.loads(completion.choices[0].message.content or "{}")
    assert seen["model"] == "plain-model" and seen["messages"] == [{"role": "user", "content": "Question: why?"}]
    with pytest.raises(openai.BadRequestError, match="missing variable: q"):
        oai.chat.completions.create(model="", messages=[], extra_body={"prompt": {"name": "ask"}})
