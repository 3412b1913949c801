"""The anthropic provider through a real ``lmdeck serve`` and the FAKE Anthropic API as a server.

An ``overloaded_error`` event inside a 200 stream, before any content, is retried and falls
back exactly like an HTTP 529; so is one after the first text, while the stream is still held
back before its commit point. After content has reached the client the stream is resumed with
a prefill, or, on a target with prefill turned off, ends with the error. A
conversation the Messages API would refuse is normalised; a parameter it cannot take is
refused with a 400 naming it, before any upstream call. Prompt-cache writes and reads are
reported in OpenAI's usage shape and priced apart, on the trace and in the budget.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import (
    FakeAnthropicProcess,
    GatewayFactory,
    GatewayProcess,
    anthropic_target,
    start_fake_anthropic,
)

USER = [{"role": "user", "content": "one two three"}]


@pytest.fixture(scope="module")
def anthropic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAnthropicProcess]:
    fake = start_fake_anthropic(log_dir=tmp_path_factory.mktemp("fake-anthropic"))
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def anthropic(anthropic_server: FakeAnthropicProcess) -> FakeAnthropicProcess:
    anthropic_server.reset()
    return anthropic_server


@pytest.fixture
def gw(gateway: GatewayFactory, anthropic: FakeAnthropicProcess) -> GatewayProcess:
    # One route per scenario, each with its own upstream model, so each has its own target and breaker.
    routes: list[dict[str, Any]] = [
        {"name": "claude", "targets": [anthropic_target(anthropic, "claude-retry", max_retries=2)]},
        {
            "name": "claude-once",
            "targets": [anthropic_target(anthropic, "claude-once", max_retries=0)],
            "fallbacks": ["claude-backup"],
        },
        {"name": "claude-backup", "targets": [anthropic_target(anthropic, "claude-backup", max_retries=0)]},
        {
            "name": "claude-after",
            "stream_commit": {"chunks": 0},
            "targets": [anthropic_target(anthropic, "claude-after", max_retries=2, options={"prefill": False})],
        },
        {
            "name": "claude-resumed",
            "stream_commit": {"chunks": 0},
            "targets": [anthropic_target(anthropic, "claude-resumed", max_retries=2)],
        },
    ]
    return gateway(routes)


def client(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0)


def stream_text(gw: GatewayProcess, model: str, request_id: str) -> str:
    chunks = client(gw).chat.completions.create(
        model=model, messages=USER, stream=True, extra_headers={"x-request-id": request_id}
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("failure", ["error_event:overloaded_error", 529], ids=["in-stream error event", "http 529"])
def test_an_overload_before_the_first_chunk_is_retried(
    gw: GatewayProcess, anthropic: FakeAnthropicProcess, failure: str | int
) -> None:
    anthropic.configure(script=[failure])
    request_id = f"retry-{uuid.uuid4().hex}"
    assert stream_text(gw, "claude", request_id) == "one two three"
    assert anthropic.count() == 2
    trace = gw.trace(request_id)
    assert trace["status_code"] == 200 and trace["retries"] == 1
    [error] = trace["metadata"]["upstream_errors"]
    assert error["status"] == 529 and error["kind"] == "overloaded"


@pytest.mark.parametrize("failure", ["error_event:overloaded_error", 529], ids=["in-stream error event", "http 529"])
def test_an_overload_before_the_first_chunk_falls_back(
    gw: GatewayProcess, anthropic: FakeAnthropicProcess, failure: str | int
) -> None:
    anthropic.configure(script=[failure])
    request_id = f"fallback-{uuid.uuid4().hex}"
    assert stream_text(gw, "claude-once", request_id) == "one two three"
    assert [r["model"] for r in anthropic.requests()] == ["claude-once", "claude-backup"]
    trace = gw.trace(request_id)
    assert trace["fallback_used"] is True and trace["metadata"]["served_by_route"] == "claude-backup"


def test_an_overload_after_the_first_text_but_before_the_commit_point_is_retried(
    gw: GatewayProcess, anthropic: FakeAnthropicProcess
) -> None:
    anthropic.configure(script=["error_event_after_text:overloaded_error"])
    assert stream_text(gw, "claude", f"held-{uuid.uuid4().hex}") == "one two three"
    assert anthropic.count() == 2


def test_an_overload_after_content_reached_the_client_is_resumed_with_a_prefill(
    gw: GatewayProcess, anthropic: FakeAnthropicProcess
) -> None:
    anthropic.configure(script=["error_event_after_text:overloaded_error"])
    request_id = f"resumed-{uuid.uuid4().hex}"
    assert stream_text(gw, "claude-resumed", request_id) == "one two three"
    _, continuation = anthropic.requests()
    assert continuation["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "one"}]}
    assert gw.trace(request_id)["metadata"]["stream_resumed"][0]["offset_chars"] == len("one ")


def test_an_overload_after_content_reached_the_client_ends_the_stream_without_prefill(
    gw: GatewayProcess, anthropic: FakeAnthropicProcess
) -> None:
    anthropic.configure(script=["error_event_after_text:overloaded_error"])
    received: list[str] = []
    chunks = client(gw).chat.completions.create(model="claude-after", messages=USER, stream=True)
    with pytest.raises(openai.APIError) as info:
        for chunk in chunks:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "overloaded" in str(info.value.message)
    assert "".join(received) == "one "
    assert anthropic.count() == 1


def test_a_conversation_anthropic_would_refuse_is_normalised(
    gw: GatewayProcess, anthropic: FakeAnthropicProcess
) -> None:
    messages: list[Any] = [
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": " "}, {"type": "text", "text": "say hi"}]},
        {"role": "system", "content": "be brief"},
        {"role": "assistant", "content": "Sure: "},
    ]
    reply = client(gw).chat.completions.create(model="claude", messages=messages, stop=["\n"], temperature=0.2)
    assert reply.choices[0].message.content == " say hi"
    [sent] = anthropic.requests()
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user", "assistant"]
    assert sent["system"] == "be brief" and "stop_sequences" not in sent


def test_a_parameter_anthropic_cannot_take_is_refused_by_name(
    gw: GatewayProcess, anthropic: FakeAnthropicProcess
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(model="claude", messages=USER, n=2)
    error = info.value.body
    assert isinstance(error, dict) and error["param"] == "n" and error["code"] == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as temperature:
        client(gw).chat.completions.create(model="claude", messages=USER, temperature=1.7, stream=True)
    assert isinstance(temperature.value.body, dict) and temperature.value.body["param"] == "temperature"
    assert anthropic.count() == 0


#: 1000 "tokens" (words, for the fake) of system prompt, marked as a prompt-cache breakpoint.
LONG_SYSTEM = " ".join(["rule"] * 1000)


def test_cache_writes_and_reads_are_reported_and_priced_apart(
    gateway: GatewayFactory, anthropic: FakeAnthropicProcess
) -> None:
    # Priced as the claude-sonnet-4-5 family: $3 in, $15 out, $3.75 a 5-minute write, $6 a 1-hour write, $0.30 a read.
    gw = gateway([{"name": "cached", "targets": [anthropic_target(anthropic, "claude-sonnet-4-5-cachetest")]}])
    admin = {"authorization": f"Bearer {gw.admin_key}"}
    created = httpx.post(
        f"{gw.url}/api/keys", json={"name": f"cache-{uuid.uuid4().hex[:8]}"}, headers=admin, timeout=60
    )
    key = created.json()
    put = httpx.put(
        f"{gw.url}/api/budgets",
        json={"scope": "key", "subject_id": key["id"], "period": "total", "limit_usd": 1},
        headers=admin,
        timeout=60,
    )
    assert put.status_code == 200, put.text
    sdk = OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)

    def ask(ttl: str, request_id: str, stream: bool = False) -> tuple[Any, dict[str, Any]]:
        control: dict[str, Any] = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}
        messages: Any = [
            {"role": "system", "content": [{"type": "text", "text": LONG_SYSTEM, "cache_control": control}]},
            {"role": "user", "content": "hello there"},
        ]
        headers = {"x-request-id": request_id}
        if stream:
            chunks = list(
                sdk.chat.completions.create(
                    model="cached",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=headers,
                )
            )
            usage = chunks[-1].usage
        else:
            usage = sdk.chat.completions.create(model="cached", messages=messages, extra_headers=headers).usage
        return usage, gw.trace(request_id)

    written, write_trace = ask("5m", f"write-{uuid.uuid4().hex}")
    assert written.prompt_tokens == 1002 and written.prompt_tokens_details.cached_tokens == 0
    assert written.model_extra["cache_creation_input_tokens"] == 1000
    assert write_trace["cache_write_tokens"] == 1000 and write_trace["cached_tokens"] == 0
    assert write_trace["cost_micros"] == 2 * 3 + 1000 * 3.75 + 2 * 15  # micro-dollars: tokens x $ per 1M

    read, read_trace = ask("5m", f"read-{uuid.uuid4().hex}", stream=True)
    assert read.prompt_tokens == 1002 and read.prompt_tokens_details.cached_tokens == 1000
    assert read.model_extra["cache_creation_input_tokens"] == 0
    assert read_trace["cached_tokens"] == 1000 and read_trace["cost_micros"] == 2 * 3 + 1000 * 0.3 + 2 * 15

    anthropic.reset()  # an empty cache: the 1-hour write is priced at 2x input
    hour, hour_trace = ask("1h", f"hour-{uuid.uuid4().hex}")
    assert hour.model_extra["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000}
    assert hour_trace["cost_micros"] == 2 * 3 + 1000 * 6 + 2 * 15

    spent = sum(t["cost_micros"] for t in (write_trace, read_trace, hour_trace))
    status = httpx.get(f"{gw.url}/api/budgets/{put.json()['id']}", headers=admin, timeout=60).json()
    assert status["spent_micros"] == spent and status["reserved_micros"] == 0
    assert status["spent"] == spent / 1_000_000
