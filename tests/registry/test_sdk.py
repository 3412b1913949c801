"""The Python client's registry calls against a real server on loopback, and the prompt cache."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import openai
import pytest

from lmdeck.protocol.templates import PromptRenderError
from lmdeck.sdk import Client, LMDeckError

from .conftest import LiveServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_for_refresh(client: Client) -> None:
    """Wait until the background refresh is over (generous: a loaded machine only makes it slower)."""
    deadline = time.monotonic() + 60
    while client.prompts._refreshing:
        assert time.monotonic() < deadline, "the background refresh never ended"
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
    """A real HTTP transport that a test can cut, as if the server went away, or make answer ``failing``."""

    def __init__(self) -> None:
        self.down = False
        self.failing: int | None = None
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.failing is not None:
            body = {"error": {"message": "overloaded", "type": "api_error", "param": None, "code": None}}
            return httpx.Response(self.failing, json=body, request=request)
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


def test_a_removed_label_ends_the_cached_copy(live_server: LiveServer) -> None:
    admin = Client(live_server.base_url, live_server.keys["admin"])
    admin.prompts.create("greet", text="Hello {{ name }}", variables={"name": "string"})
    admin.prompts.label("greet", "production", 1)
    admin.prompts.label("greet", "staging", 1)
    app = Client(live_server.base_url, live_server.keys["viewer"])
    clock = FakeClock()
    app.prompts.clock = clock
    assert app.prompts.get("greet", cache_ttl=5).version == 1
    assert app.prompts.get("greet", label="staging", cache_ttl=5).version == 1
    admin.prompts.unlabel("greet", "production")
    admin.prompts.unlabel("greet", "staging")

    # A stale copy is served while it is revalidated; the 404 then ends it.
    clock.now += 60
    assert app.prompts.get("greet", cache_ttl=5).version == 1
    wait_for_refresh(app)
    with pytest.raises(LMDeckError) as gone:
        app.prompts.get("greet", cache_ttl=5)
    assert gone.value.status == 404
    assert app.prompts.get("greet", cache_ttl=5, fallback="Hi {{ name }} (default)").is_fallback
    # Without a cache lifetime the fetch happens at once, and its 404 is not hidden by the old copy.
    with pytest.raises(LMDeckError) as at_once:
        app.prompts.get("greet", label="staging", cache_ttl=0)
    assert at_once.value.status == 404
    assert app.prompts.stats.gone == 2 and app.prompts.stats.stale_served == 0


def test_an_unreachable_or_failing_server_keeps_the_copy_and_says_so(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    admin = Client(live_server.base_url, live_server.keys["admin"])
    admin.prompts.create("greet", text="Hello {{ name }}", variables={"name": "string"})
    admin.prompts.label("greet", "production", 1)
    link = SwitchableTransport()
    app = Client(live_server.base_url, live_server.keys["viewer"], transport=link)
    clock = FakeClock()
    app.prompts.clock = clock
    assert app.prompts.get("greet", cache_ttl=5).version == 1
    for status in (503, 500, 429, None):
        link.failing, link.down = status, status is None
        clock.now += 60
        assert app.prompts.get("greet", cache_ttl=5).version == 1
        wait_for_refresh(app)
        assert app.prompts.get("greet", cache_ttl=5).version == 1
        assert app.prompts.get("greet", cache_ttl=0).version == 1
        wait_for_refresh(app)
    stats = app.prompts.stats
    # Each round: the failed background refresh and the failed direct fetch, each followed by a stale copy.
    assert stats.gone == 0 and stats.refresh_errors >= 8 and stats.stale_served >= 8
    assert "serving the cached prompt greet@production: the server could not be reached" in caplog.text
    link.failing, link.down = None, False
    assert app.prompts.get("greet", cache_ttl=0).version == 1
    assert app.prompts.get("greet", cache_ttl=5).version == 1 and stats.hits >= 1
