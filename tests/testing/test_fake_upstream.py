"""The fake upstream in-process (ASGI) and, for connection-level misbehaviour, as a real process."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from lmdeck.testing import Action, FakeConfig
from lmdeck.testing.fake_upstream import FakeUpstream, config_from_args, parse_args
from lmdeck.testing.servers import FakeUpstreamProcess, fake_upstream_process

USER = [{"role": "user", "content": "hello big world"}]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FakeUpstream()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake") as c:
        yield c


def sse_events(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(orjson.loads(line[6:]))
    return out


async def test_chat_echoes_the_last_user_message_with_usage(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hello big world"}
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert body["model"] == "m"


async def test_stream_joins_back_and_includes_usage_only_when_asked(client: httpx.AsyncClient) -> None:
    payload: dict[str, Any] = {"model": "m", "messages": USER, "stream": True}
    r = await client.post("/v1/chat/completions", json=payload)
    events = sse_events(r.text)
    assert r.text.endswith("data: [DONE]\n\n")
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == "hello big world"
    assert all("usage" not in e for e in events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"

    r = await client.post("/v1/chat/completions", json={**payload, "stream_options": {"include_usage": True}})
    last = sse_events(r.text)[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3


async def test_max_tokens_and_stop_cut_the_reply(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "max_tokens": 2})
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == "hello big" and choice["finish_reason"] == "length"
    r = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stop": " big"})
    assert r.json()["choices"][0]["message"]["content"] == "hello"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


async def test_tool_call_when_the_message_names_a_tool(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "please call get_weather"}]
    r = await client.post("/v1/chat/completions", json={"model": "m", "messages": messages, "tools": TOOLS})
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "please call get_weather"}

    follow = [*messages, choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    r = await client.post("/v1/chat/completions", json={"model": "m", "messages": follow, "tools": TOOLS})
    assert r.json()["choices"][0]["message"]["content"] == "tool said: sunny"

    r = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "tools": TOOLS, "stream": True})
    assert all("tool_calls" not in e["choices"][0]["delta"] for e in sse_events(r.text) if e["choices"])


async def test_streamed_tool_call(client: httpx.AsyncClient) -> None:
    payload = {"model": "m", "messages": USER, "tools": TOOLS, "tool_choice": "required", "stream": True}
    events = sse_events((await client.post("/v1/chat/completions", json=payload)).text)
    calls = [e["choices"][0]["delta"]["tool_calls"] for e in events if "tool_calls" in e["choices"][0]["delta"]]
    assert calls[0][0]["function"]["name"] == "get_weather"
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_json_response_format(client: httpx.AsyncClient) -> None:
    payload = {"model": "m", "messages": USER, "response_format": {"type": "json_object"}}
    content = (await client.post("/v1/chat/completions", json=payload)).json()["choices"][0]["message"]["content"]
    assert orjson.loads(content) == {"echo": "hello big world"}


async def test_embeddings_are_deterministic_unit_vectors(client: httpx.AsyncClient) -> None:
    r1 = (await client.post("/v1/embeddings", json={"model": "e", "input": ["a", "b"]})).json()
    r2 = (await client.post("/v1/embeddings", json={"model": "e", "input": "a"})).json()
    a, b = r1["data"][0]["embedding"], r1["data"][1]["embedding"]
    assert a == r2["data"][0]["embedding"] and a != b
    assert len(a) == 16 and abs(sum(x * x for x in a) - 1.0) < 1e-9
    r3 = (await client.post("/v1/embeddings", json={"model": "e", "input": "a", "encoding_format": "base64"})).json()
    raw = base64.b64decode(r3["data"][0]["embedding"])
    assert struct.unpack(f"<{len(raw) // 4}f", raw) == pytest.approx(a, rel=1e-6)
    r4 = (await client.post("/v1/embeddings", json={"model": "e", "input": "a", "dimensions": 4})).json()
    assert len(r4["data"][0]["embedding"]) == 4


async def test_completions_and_models(client: httpx.AsyncClient) -> None:
    r = (await client.post("/v1/completions", json={"model": "m", "prompt": ["one two", "three"]})).json()
    assert [c["text"] for c in r["choices"]] == ["one two", "three"]
    r2 = await client.post("/v1/completions", json={"model": "m", "prompt": "one two", "stream": True})
    assert "".join(e["choices"][0]["text"] for e in sse_events(r2.text)) == "one two"
    models = (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["fake-model"]


async def test_script_then_normal_and_stats(client: httpx.AsyncClient) -> None:
    r = await client.post("/_fake/config", json={"script": [500, "429:1", 200]})
    assert r.status_code == 200
    statuses = []
    for _ in range(4):
        resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
        statuses.append((resp.status_code, resp.headers.get("retry-after")))
    assert statuses == [(500, None), (429, "1"), (200, None), (200, None)]
    await client.get("/v1/models")
    stats = (await client.get("/_fake/stats")).json()
    assert stats["counts"] == {"/v1/chat/completions": 4, "/v1/models": 1}
    assert stats["outcomes"] == {"error:500": 1, "error:429": 1, "answer": 2}
    recorded = (await client.get("/_fake/requests")).json()
    assert recorded[-1]["path"] == "/v1/chat/completions" and recorded[0]["body"]["messages"] == USER

    await client.post("/_fake/reset")
    assert (await client.get("/_fake/stats")).json()["total"] == 0


async def test_error_rate_and_retry_after(client: httpx.AsyncClient) -> None:
    await client.post("/_fake/config", json={"error_rate": 1.0, "error_status": 503, "retry_after": 2})
    r = await client.post("/v1/embeddings", json={"model": "e", "input": "x"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["message"]


async def test_api_key_and_bad_bodies(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/chat/completions", content=b"{nope")).status_code == 400
    assert (await client.post("/v1/chat/completions", json={"model": "m", "messages": []})).status_code == 400
    assert (await client.get("/v1/nothing")).status_code == 404
    await client.post("/_fake/config", json={"api_key": "k"})
    assert (await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})).status_code == 401
    ok = await client.post(
        "/v1/chat/completions", json={"model": "m", "messages": USER}, headers={"authorization": "Bearer k"}
    )
    assert ok.status_code == 200


async def test_invalid_control_changes_are_refused(client: httpx.AsyncClient) -> None:
    assert (await client.post("/_fake/config", json={"script": ["explode"]})).status_code == 400
    assert (await client.post("/_fake/config", json={"latency_ms": -1})).status_code == 400
    assert (await client.post("/_fake/config", json={"nope": 1})).status_code == 400
    assert (await client.post("/_fake/config", content=b"[1]")).status_code == 400


def test_script_shorthands() -> None:
    config = FakeConfig(
        script=[
            500,
            "429:1.5",
            "reset",
            {"status": 502, "retry_after": 3},
            200,
            "drop_mid_stream:4",
            "error_mid_stream",
        ]
    )
    assert config.script == [
        Action(do="error", status=500),
        Action(do="error", status=429, retry_after=1.5),
        Action(do="reset"),
        Action(do="error", status=502, retry_after=3),
        Action(do="answer", status=200),
        Action(do="drop_mid_stream", after_chunks=4),
        Action(do="error_mid_stream", after_chunks=1),
    ]
    with pytest.raises(ValidationError):
        FakeConfig(script=[True])
    with pytest.raises(ValidationError):
        FakeConfig(script=["reset:2"])


def test_command_line_options() -> None:
    config = config_from_args(
        parse_args(["--latency-ms", "5", "--script", "500,429:1", "--model", "a", "--model", "b"])
    )
    assert config.latency_ms == 5 and config.models == ["a", "b"] and config.script[1].retry_after == 1
    faulty = config_from_args(parse_args(["--fault-rate", "0.3", "--faults", "503,reset,drop_mid_stream:2"]))
    assert faulty.fault_rate == 0.3
    assert faulty.faults == [
        Action(do="error", status=503),
        Action(do="reset"),
        Action(do="drop_mid_stream", after_chunks=2),
    ]


async def test_random_faults_are_drawn_from_the_list_and_repeat_with_the_seed(client: httpx.AsyncClient) -> None:
    async def run() -> list[int]:
        await client.post("/_fake/reset")
        await client.post("/_fake/config", json={"fault_rate": 0.5, "faults": [502, 503], "seed": 7})
        body = {"model": "m", "messages": USER}
        return [(await client.post("/v1/chat/completions", json=body)).status_code for _ in range(40)]

    first = await run()
    assert set(first) == {200, 502, 503} and await run() == first


async def test_an_error_event_mid_stream_after_k_tokens(client: httpx.AsyncClient) -> None:
    body = {"model": "m", "messages": USER, "stream": True}
    await client.post(
        "/_fake/config", json={"script": ["error_mid_stream:2", "error_mid_stream:9", "error_mid_stream"]}
    )
    events = sse_events((await client.post("/v1/chat/completions", json=body)).text)
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] == ["hello ", "big "]
    assert events[-1]["error"]["message"] == "fake upstream failed mid-stream" and len(events) == 4
    # A reply shorter than k: every token and the finish, then the error before [DONE].
    events = sse_events((await client.post("/v1/chat/completions", json=body)).text)
    assert events[-2]["choices"][0]["finish_reason"] == "stop" and "error" in events[-1]
    plain = await client.post("/v1/chat/completions", json={**body, "stream": False})
    assert plain.status_code == 500


async def test_continue_final_message_finishes_the_reply(client: httpx.AsyncClient) -> None:
    begun = [*USER, {"role": "assistant", "content": "hello b"}]
    body = {"model": "m", "messages": begun, "continue_final_message": True, "add_generation_prompt": False}
    r = await client.post(
        "/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    events = sse_events(r.text)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == "ig world"
    assert events[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    limited = await client.post("/v1/chat/completions", json={**body, "max_tokens": 1})
    choice = limited.json()["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "ig"} and choice["finish_reason"] == "length"
    # A beginning that is not the reply's: the whole reply again, as a model starting over would.
    elsewhere = {**body, "messages": [*USER, {"role": "assistant", "content": "goodbye"}]}
    assert (await client.post("/v1/chat/completions", json=elsewhere)).json()["choices"][0]["message"][
        "content"
    ] == "hello big world"
    both = await client.post("/v1/chat/completions", json={**body, "add_generation_prompt": True})
    assert both.status_code == 400 and "add_generation_prompt" in both.json()["error"]["message"]
    no_assistant = await client.post("/v1/chat/completions", json={**body, "messages": USER})
    assert no_assistant.status_code == 400


@pytest.fixture(scope="module")
def fake_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamProcess]:
    with fake_upstream_process(log_dir=tmp_path_factory.mktemp("fake")) as fake:
        yield fake


def test_real_process_resets_hangs_and_drops(fake_process: FakeUpstreamProcess) -> None:
    fake_process.reset()
    fake_process.configure(script=["reset", "hang", "hang_before_first_token", "drop_mid_stream:2"])
    url = fake_process.base_url + "/chat/completions"
    body = {"model": "m", "messages": USER}
    with pytest.raises(httpx.TransportError):
        httpx.post(url, json=body, timeout=60)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=body, timeout=0.3)
    # The headers come at once, the first token never: 2 s leaves room for the headers on a loaded machine.
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=2.0) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            r.read()
    received = []
    with pytest.raises(httpx.TransportError), httpx.stream("POST", url, json={**body, "stream": True}, timeout=60) as r:
        for line in r.iter_lines():
            received.append(line)
    assert any("big" in line for line in received) and not any("world" in line for line in received)
    assert httpx.post(url, json=body, timeout=60).json()["choices"][0]["message"]["content"] == "hello big world"
    assert fake_process.stats()["outcomes"]["reset"] == 1


def test_real_process_latency_and_token_rate(fake_process: FakeUpstreamProcess) -> None:
    fake_process.reset()
    fake_process.configure(latency_ms=50, tokens_per_s=100)
    config = fake_process.configure()
    assert config["latency_ms"] == 50 and config["tokens_per_s"] == 100
    r = httpx.post(
        fake_process.base_url + "/chat/completions", json={"model": "m", "messages": USER, "stream": True}, timeout=60
    )
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in sse_events(r.text)) == "hello big world"


async def test_answers_reply_by_the_last_user_message_before_the_fixed_reply() -> None:
    app = FakeUpstream(FakeConfig(answers={"What is 2+2?": "4"}, reply="fixed"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake") as c:
        known = await c.post(
            "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "What is 2+2?"}]}
        )
        other = await c.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert known.json()["choices"][0]["message"]["content"] == "4"
    assert other.json()["choices"][0]["message"]["content"] == "fixed"


async def test_requests_carry_when_they_came_and_finished_and_latency_can_depend_on_the_model(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/_fake/config", json={"model_latency_ms": {"slow": 50}})
    await client.post("/v1/chat/completions", json={"model": "slow", "messages": USER})
    await client.post("/v1/chat/completions", json={"model": "quick", "messages": USER})
    slow, quick = (await client.get("/_fake/requests")).json()
    assert slow["body"]["model"] == "slow" and quick["body"]["model"] == "quick"
    assert slow["finished_at"] - slow["received_at"] >= 0.045
    assert slow["finished_at"] <= quick["received_at"] <= quick["finished_at"]
