"""What a real ``lmdeck serve`` exports over OTLP, decoded from the protobuf a FAKE collector receives.

One gateway (in front of the FAKE upstream, plus the bundled local ``demo`` and ``embed`` models)
exports to an in-test OTLP/HTTP receiver; each test sends requests with the official ``openai``
SDK and checks the decoded spans and metrics against the OpenTelemetry HTTP and GenAI conventions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from lmdeck.testing.otlp import OtlpReceiver, ReceivedSpan
from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess, receiver: OtlpReceiver) -> GatewayProcess:
    fake = fake_upstream_server
    routes = [
        {"name": "chat", "targets": [openai_target(fake)]},
        {"name": "vectors", "kind": "embeddings", "targets": [openai_target(fake, "fake-embed")]},
        {"name": "primary", "targets": [openai_target(fake, "primary-model", max_retries=1)], "fallbacks": ["backup"]},
        {"name": "backup", "targets": [openai_target(fake, "backup-model")]},
    ]
    env = {
        "LMDECK_OTLP_ENDPOINT": receiver.url,  # a base URL: lmdeck appends /v1/traces and /v1/metrics
        "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-tenant=lmdeck%20tests",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }
    return gateway(routes, env=env, default_routes=True, fresh=True)


@pytest.fixture
def fake(fake_upstream_server: FakeUpstreamProcess) -> FakeUpstreamProcess:
    fake_upstream_server.reset()
    return fake_upstream_server


def _client(gw: GatewayProcess, key: str | None = None) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key or gw.admin_key, max_retries=0)


def _request_spans(receiver: OtlpReceiver, request_id: str, children: int) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    """The SERVER span of ``request_id`` and its ``children``, once all have arrived."""

    def server_of(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
        found = [s for s in spans if s.kind == "SPAN_KIND_SERVER" and s.attributes["lmdeck.request_id"] == request_id]
        return found[0] if found else None

    def ready(spans: list[ReceivedSpan]) -> bool:
        server = server_of(spans)
        return server is not None and len([s for s in spans if s.parent_span_id == server.span_id]) >= children

    spans = receiver.wait_for_spans(ready)
    server = server_of(spans)
    assert server is not None
    kids = sorted((s for s in spans if s.parent_span_id == server.span_id), key=lambda s: s.start_ns)
    assert len(kids) == children, [k.name for k in kids]
    return server, kids


def _traced(call: Callable[..., Any], **kwargs: Any) -> tuple[Any, httpx.Headers]:
    raw = call(**kwargs)
    return raw.parse(), raw.headers


def test_chat_has_a_server_span_and_a_genai_client_span_per_attempt(
    gw: GatewayProcess, fake: FakeUpstreamProcess, receiver: OtlpReceiver
) -> None:
    headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=abc,other=1"}
    answer, response_headers = _traced(
        _client(gw).chat.completions.with_raw_response.create,
        model="chat",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        max_tokens=20,
        temperature=0.5,
        stop=["END"],
        frequency_penalty=0.25,
        presence_penalty=0.5,
        n=2,
        response_format={"type": "json_object"},
        extra_headers=headers,
    )
    server, (client,) = _request_spans(receiver, response_headers["x-request-id"], 1)

    # SERVER span: HTTP conventions, lmdeck's own trace, the caller's span a link, the id announced.
    assert server.name == "POST /v1/chat/completions"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["url.path"] == "/v1/chat/completions"
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["server.port"] == gw.port
    assert server.parent_span_id == ""
    assert server.links == [{"trace_id": CALLER_TRACE, "span_id": CALLER_SPAN, "lmdeck.link": "caller"}]
    assert response_headers["traceparent"] == f"00-{CALLER_TRACE}-{server.span_id}-01"
    assert server.resource["service.name"] == "lmdeck"
    assert receiver.headers[-1]["x-collector-tenant"] == "lmdeck tests"

    # CLIENT span: the GenAI conventions, what was asked and what the upstream answered.
    attrs = client.attributes
    assert client.name == "chat chat" and client.kind == "SPAN_KIND_CLIENT"
    assert client.trace_id == server.trace_id
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "chat"
    assert attrs["gen_ai.response.model"] == answer.model
    assert attrs["gen_ai.response.id"] == answer.id
    assert attrs["gen_ai.response.finish_reasons"] == [c.finish_reason for c in answer.choices]
    assert attrs["gen_ai.request.stream"] is False
    assert attrs["gen_ai.request.max_tokens"] == 20
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.request.stop_sequences"] == ["END"]
    assert attrs["gen_ai.request.frequency_penalty"] == 0.25
    assert attrs["gen_ai.request.presence_penalty"] == 0.5
    assert attrs["gen_ai.request.choice.count"] == 2
    assert attrs["gen_ai.output.type"] == "json"
    assert answer.usage is not None
    assert attrs["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert attrs["server.address"] == fake.host
    assert attrs["server.port"] == fake.port
    assert attrs["http.response.status_code"] == 200
    assert "error.type" not in attrs
    # Content is opt-in: off by default.
    assert not {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"} & set(attrs)

    # The upstream got the CLIENT span as its parent, in lmdeck's trace, and the caller's tracestate.
    (sent,) = fake.requests()
    assert sent["headers"]["traceparent"] == f"00-{server.trace_id}-{client.span_id}-01"
    assert sent["headers"]["tracestate"] == "vendor=abc,other=1"


def test_a_stream_has_its_time_to_first_chunk_in_seconds(
    gw: GatewayProcess, fake: FakeUpstreamProcess, receiver: OtlpReceiver
) -> None:
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    chunks = list(raw.parse())
    _, (client,) = _request_spans(receiver, raw.headers["x-request-id"], 1)
    attrs = client.attributes
    assert attrs["gen_ai.request.stream"] is True
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] < 60  # seconds, not milliseconds
    assert attrs["gen_ai.response.id"] == chunks[0].id
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.usage.output_tokens"] > 0  # asked upstream even though the client did not
    assert "lmdeck.time_to_first_token_ms" not in attrs


def test_a_local_model_stream_without_include_usage_knows_its_tokens(
    gw: GatewayProcess, receiver: OtlpReceiver
) -> None:
    client_request_id = f"local-{uuid.uuid4().hex[:8]}"
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="demo",
        messages=[{"role": "user", "content": "tell me a story about a cat"}],
        stream=True,
        max_tokens=12,
        extra_headers={"x-request-id": client_request_id},
    )
    chunks = list(raw.parse())
    assert all(chunk.usage is None for chunk in chunks)  # the client did not ask for usage
    _, (span,) = _request_spans(receiver, raw.headers["x-request-id"], 1)
    trace = gw.trace(client_request_id)
    assert trace["input_tokens"] > 0 and trace["output_tokens"] > 0
    assert span.attributes["gen_ai.usage.input_tokens"] == trace["input_tokens"]
    assert span.attributes["gen_ai.usage.output_tokens"] == trace["output_tokens"]
    assert span.attributes["gen_ai.provider.name"] == "local"
    assert "server.address" not in span.attributes  # an in-process model: no upstream address


def test_embeddings_have_their_dimension_and_encoding_and_no_output_tokens(
    gw: GatewayProcess, fake: FakeUpstreamProcess, receiver: OtlpReceiver
) -> None:
    answer, headers = _traced(
        _client(gw).embeddings.with_raw_response.create, model="vectors", input=["one", "two"], encoding_format="float"
    )
    _, (client,) = _request_spans(receiver, headers["x-request-id"], 1)
    attrs = client.attributes
    assert client.name == "embeddings vectors"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.embeddings.dimension.count"] == len(answer.data[0].embedding)
    assert attrs["gen_ai.request.encoding_formats"] == ["float"]
    assert attrs["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert "gen_ai.usage.output_tokens" not in attrs
    assert "gen_ai.request.stream" not in attrs


def test_retries_and_fallbacks_are_one_client_span_each(
    gw: GatewayProcess, fake: FakeUpstreamProcess, receiver: OtlpReceiver
) -> None:
    fake.configure(script=[500, 503, 200])  # the primary target fails twice, the fallback route answers
    answer, headers = _traced(
        _client(gw).chat.completions.with_raw_response.create,
        model="primary",
        messages=[{"role": "user", "content": "hi"}],
    )
    server, attempts = _request_spans(receiver, headers["x-request-id"], 3)
    assert [a.attributes["http.response.status_code"] for a in attempts] == [500, 503, 200]
    assert [a.attributes.get("error.type") for a in attempts] == ["500", "503", None]
    assert [a.status for a in attempts] == ["STATUS_CODE_ERROR", "STATUS_CODE_ERROR", "STATUS_CODE_UNSET"]
    targets = [a.attributes["lmdeck.target"] for a in attempts]
    assert targets[0] == targets[1] != targets[2]  # retried on the primary, then the fallback route's target
    assert all(a.name == "chat primary" for a in attempts)
    assert "gen_ai.response.model" not in attempts[0].attributes  # no answer came from a failed attempt
    assert attempts[-1].attributes["gen_ai.response.model"] == answer.model
    assert server.attributes["http.response.status_code"] == 200
    # Each upstream call named its own attempt's span as its parent.
    received = [r["headers"]["traceparent"] for r in fake.requests()]
    assert received == [f"00-{server.trace_id}-{a.span_id}-01" for a in attempts]


def test_an_unknown_model_is_named_as_the_client_sent_it(gw: GatewayProcess, receiver: OtlpReceiver) -> None:
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
        headers=gw.headers(),
        timeout=60,
    )
    assert response.status_code == 404
    server, (span,) = _request_spans(receiver, response.headers["x-request-id"], 1)
    assert server.attributes["http.response.status_code"] == 404
    assert span.name == "chat no-such-model"
    assert span.attributes["gen_ai.request.model"] == "no-such-model"
    assert "gen_ai.response.model" not in span.attributes
    assert "gen_ai.usage.input_tokens" not in span.attributes  # unknown, not 0
    assert span.attributes["error.type"] == "model_not_found"


def test_refused_requests_have_their_server_span(gw: GatewayProcess, receiver: OtlpReceiver) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    bad_key = httpx.post(
        f"{gw.base_url}/chat/completions", json=body, headers={"authorization": "Bearer sk-wrong"}, timeout=60
    )
    assert bad_key.status_code == 401
    server, _ = _request_spans(receiver, bad_key.headers["x-request-id"], 0)
    assert server.attributes["http.response.status_code"] == 401
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert bad_key.headers["traceparent"].split("-")[2] == server.span_id

    created = httpx.post(
        f"{gw.url}/api/keys", json={"name": f"slow-{uuid.uuid4().hex[:6]}", "rpm": 1}, headers=gw.headers(), timeout=60
    )
    assert created.status_code in (200, 201), created.text
    key = created.json()["key"]
    statuses = []
    for _ in range(2):
        sent = httpx.post(
            f"{gw.base_url}/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=60
        )
        statuses.append(sent.status_code)
    assert statuses == [200, 429]
    server, _ = _request_spans(receiver, sent.headers["x-request-id"], 1)
    assert server.attributes["http.response.status_code"] == 429


def test_an_unsampled_traceparent_exports_nothing_and_announces_nothing(
    gw: GatewayProcess, fake: FakeUpstreamProcess, receiver: OtlpReceiver
) -> None:
    unsampled = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "quiet"}]},
        headers={**gw.headers(), "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"},
        timeout=60,
    )
    assert unsampled.status_code == 200
    assert "traceparent" not in unsampled.headers
    # The upstream is told not to sample either.
    (sent,) = fake.requests()
    assert sent["headers"]["traceparent"].endswith("-00")
    # A later sampled request's spans arrive after any of the first one's would have (one batch queue).
    marker = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "loud"}]},
        headers=gw.headers(),
        timeout=60,
    )
    _request_spans(receiver, marker.headers["x-request-id"], 1)
    quiet_id = unsampled.headers["x-request-id"]
    assert not [s for s in receiver.spans() if s.attributes.get("lmdeck.request_id") == quiet_id]
    assert not [s for s in receiver.spans() if s.trace_id == sent["headers"]["traceparent"].split("-")[1]]


def test_genai_metrics_are_exported_over_otlp(gw: GatewayProcess, receiver: OtlpReceiver) -> None:
    _client(gw).chat.completions.create(model="chat", messages=[{"role": "user", "content": "count me"}])

    def both_types(points: list[Any]) -> bool:
        kinds = {
            p.attributes.get("gen_ai.token.type") for p in points if p.attributes["gen_ai.request.model"] == "chat"
        }
        return {"input", "output"} <= kinds

    tokens = receiver.wait_for_points("gen_ai.client.token.usage", both_types)
    point = next(p for p in tokens if p.attributes["gen_ai.request.model"] == "chat")
    assert point.unit == "{token}"
    assert point.attributes["gen_ai.operation.name"] == "chat"
    assert point.attributes["gen_ai.provider.name"] == "openai"
    assert point.count >= 1 and point.sum > 0
    durations = receiver.wait_for_points(
        "gen_ai.client.operation.duration", lambda ps: any(p.attributes["gen_ai.request.model"] == "chat" for p in ps)
    )
    duration = next(p for p in durations if p.attributes["gen_ai.request.model"] == "chat")
    assert duration.unit == "s"
    assert 0 < duration.sum < 60 * duration.count  # seconds
