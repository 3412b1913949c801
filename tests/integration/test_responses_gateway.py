"""``/v1/responses`` through a real ``lmdeck serve``, with the official ``openai`` SDK.

One gateway for the module: route ``chat`` in front of the fake OpenAI upstream, and the bundled
``demo`` model on the local engine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import (
    FakeAnthropicProcess,
    FakeUpstreamProcess,
    GatewayFactory,
    GatewayProcess,
    anthropic_target,
    openai_target,
    start_fake_anthropic,
)

LOCAL_DEMO = {"provider": "local", "model": "demo", "timeout": 120, "max_retries": 0}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def anthropic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAnthropicProcess]:
    fake = start_fake_anthropic(log_dir=tmp_path_factory.mktemp("fake-anthropic-responses"))
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def gw(
    gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess, anthropic: FakeAnthropicProcess
) -> GatewayProcess:
    routes = [
        {"name": "claude", "targets": [anthropic_target(anthropic, max_retries=0)]},
        {"name": "chat", "targets": [openai_target(fake_upstream_server)]},
        {"name": "demo", "targets": [LOCAL_DEMO]},
        {"name": "once", "targets": [openai_target(fake_upstream_server, max_retries=0)]},
        {"name": "native", "targets": [openai_target(fake_upstream_server, options={"responses": "native"})]},
    ]
    return gateway(routes, policy={"pricing": {"fake-model": {"input": 1, "output": 2}}})


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=60)


def rid() -> str:
    return f"resp-{uuid.uuid4().hex}"


def team_key(gw: GatewayProcess) -> str:
    admin = gw.headers()
    team = httpx.post(f"{gw.url}/api/teams", json={"name": f"t-{uuid.uuid4().hex[:8]}"}, headers=admin, timeout=60)
    assert team.status_code in (200, 201), team.text
    key = httpx.post(
        f"{gw.url}/api/keys",
        json={"name": f"k-{uuid.uuid4().hex[:8]}", "team_id": team.json()["id"]},
        headers=admin,
        timeout=60,
    )
    assert key.status_code in (200, 201), key.text
    return str(key.json()["key"])


def test_create_against_the_fake_upstream_is_traced_once(client: OpenAI, gw: GatewayProcess) -> None:
    request_id = rid()
    response = client.responses.create(
        model="chat", input="hello there", instructions="be brief", extra_headers={"x-request-id": request_id}
    )
    assert response.status == "completed" and response.output_text == "hello there"
    assert response.usage is not None and response.usage.total_tokens == response.usage.input_tokens + 2
    trace = gw.trace(request_id)
    assert trace["metadata"]["ingress"] == "responses" and trace["kind"] == "chat"
    assert trace["input_tokens"] == response.usage.input_tokens and trace["output_tokens"] == 2
    assert trace["cost_micros"] == trace["input_tokens"] * 1 + 2 * 2
    listed = httpx.get(
        f"{gw.url}/api/traces", params={"client_request_id": request_id}, headers=gw.headers(), timeout=60
    )
    assert len(listed.json()["data"]) == 1


def test_stream_events_parse_in_order_with_usage(client: OpenAI, gw: GatewayProcess) -> None:
    request_id = rid()
    with client.responses.stream(
        model="chat", input="stream me please", extra_headers={"x-request-id": request_id}
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == "stream me please"
    assert final.usage is not None and final.usage.output_tokens == 3
    trace = gw.trace(request_id)
    assert trace["stream"] is True and trace["output_tokens"] == 3 and trace["metadata"]["ingress"] == "responses"
    assert trace["input_tokens"] == final.usage.input_tokens
    assert trace["cost_micros"] == trace["input_tokens"] * 1 + 3 * 2
    listed = httpx.get(
        f"{gw.url}/api/traces", params={"client_request_id": request_id}, headers=gw.headers(), timeout=60
    )
    assert len(listed.json()["data"]) == 1


def test_demo_model_non_stream_and_stream(client: OpenAI) -> None:
    whole = client.responses.create(model="demo", input="What is 12+7?", max_output_tokens=8)
    assert whole.output_text and whole.usage is not None and whole.usage.output_tokens >= 1
    events = list(client.responses.create(model="demo", input="What is 12+7?", max_output_tokens=8, stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type in ("response.completed", "response.incomplete")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and text == events[-1].response.output_text


def test_an_upstream_failure_mid_stream_ends_with_response_failed(
    client: OpenAI, gw: GatewayProcess, fake_upstream_server: FakeUpstreamProcess
) -> None:
    fake_upstream_server.reset()
    fake_upstream_server.configure(script=["error_mid_stream:3"])
    request_id = rid()
    try:
        stream = client.responses.create(
            model="once", input="one two three four", stream=True, extra_headers={"x-request-id": request_id}
        )
        events = list(stream)
    finally:
        fake_upstream_server.reset()
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"]
    assert "response.completed" not in kinds
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed" and failed.response.error
    assert "one" in "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert gw.trace(request_id)["status_code"] >= 500


def test_an_anthropic_target_gets_the_chat_translation(client: OpenAI, anthropic: FakeAnthropicProcess) -> None:
    whole = client.responses.create(model="claude", input="hello from responses", instructions="be brief")
    assert whole.status == "completed" and whole.output_text
    assert whole.usage is not None and whole.usage.output_tokens > 0
    events = list(client.responses.create(model="claude", input="hello from responses", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].type == "response.completed" and text == events[-1].response.output_text == whole.output_text


def test_a_native_target_receives_the_original_body_and_streams_are_translated(
    client: OpenAI, gw: GatewayProcess, fake_upstream_server: FakeUpstreamProcess
) -> None:
    fake_upstream_server.reset()
    request_id = rid()
    whole = client.responses.create(
        model="native",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "native please"}]}],
        instructions="be brief",
        metadata={"origin": "test"},
        extra_headers={"x-request-id": request_id},
    )
    sent = fake_upstream_server.requests()[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"]["instructions"] == "be brief" and sent["body"]["metadata"] == {"origin": "test"}
    assert sent["body"]["model"] == "fake-model" and sent["body"]["input"][0]["content"][0]["type"] == "input_text"
    assert whole.output_text == "native please" and whole.usage is not None and whole.usage.output_tokens == 2
    assert client.responses.retrieve(whole.id).output_text == "native please"
    trace = gw.trace(request_id)
    assert trace["output_tokens"] == 2 and trace["metadata"]["ingress"] == "responses"
    # A continued conversation and a stream are translated: the upstream knows neither lmdeck's ids nor its events.
    again = client.responses.create(model="native", input="and again", previous_response_id=whole.id)
    assert fake_upstream_server.requests()[-1]["path"] == "/v1/chat/completions" and again.output_text == "and again"
    events = list(client.responses.create(model="native", input="streamed", stream=True))
    assert fake_upstream_server.requests()[-1]["path"] == "/v1/chat/completions"
    assert events[-1].type == "response.completed"


def test_function_tool_round_trip(client: OpenAI) -> None:
    first = client.responses.create(model="chat", input="call get_weather for Paris", tools=[WEATHER])
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)
    follow = client.responses.create(
        model="chat",
        input=[
            {"role": "user", "content": "call get_weather for Paris"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert follow.output_text == "tool said: sunny"


def test_streamed_function_call_arguments(client: OpenAI) -> None:
    events = list(
        client.responses.create(model="chat", input="call get_weather for Rome", tools=[WEATHER], stream=True)
    )
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) and events[-1].type == "response.completed"


def test_previous_response_id_chain_and_store_false(client: OpenAI, fake_upstream_server: FakeUpstreamProcess) -> None:
    first = client.responses.create(model="chat", input="my name is Ada", instructions="remember")
    fake_upstream_server.reset()
    second = client.responses.create(model="chat", input="what is my name", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    sent = fake_upstream_server.requests()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]  # instructions are not carried over
    assert sent[1]["content"] == first.output_text
    unstored = client.responses.create(model="chat", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError, match="store: false"):
        client.responses.create(model="chat", input="again", previous_response_id=unstored.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_json_schema_output(client: OpenAI) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    response = client.responses.create(
        model="chat",
        input="structured please",
        text={"format": {"type": "json_schema", "name": "echo", "schema": schema, "strict": True}},
    )
    assert json.loads(response.output_text) == {"echo": "structured please"}
    assert response.text is not None and response.text.format is not None and response.text.format.type == "json_schema"


def test_get_delete_and_another_teams_key(client: OpenAI, gw: GatewayProcess) -> None:
    created = client.responses.create(model="chat", input="keep this")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == "keep this"
    other = OpenAI(base_url=gw.base_url, api_key=team_key(gw), max_retries=0, timeout=60)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="chat", input="hi", previous_response_id=created.id)
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "chat", "input": [{"type": "reasoning_summary"}]}, "input.0"),
        ({"model": "chat", "input": [{"role": "user"}]}, "input.0.message.content"),
        ({"model": "chat", "input": 5}, "input"),
        ({"model": "chat", "input": "hi", "temperature": "hot"}, "temperature"),
        ({"model": "chat", "input": "hi", "tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"model": "chat", "input": "hi", "background": True}, "background"),
        ({"model": "chat", "input": "hi", "frobnicate": 1}, "frobnicate"),
        ({"model": "demo", "input": "hi", "reasoning": {"effort": "low"}}, "reasoning"),
        ({"model": "demo", "input": "hi", "text": {"format": {"type": "json_object"}}}, "text.format"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(gw: GatewayProcess, body: dict[str, Any], param: str) -> None:
    answer = httpx.post(f"{gw.base_url}/responses", json=body, headers=gw.headers(), timeout=60)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] is not None and error["param"].startswith(param), error
    assert set(error) == {"message", "type", "param", "code"}
