"""Sessions and OTLP ingest against a real ``lmdeck serve`` (in front of the FAKE upstream).

An application traced with the official OpenTelemetry SDK sends its spans to lmdeck's
``/v1/traces`` with the official OTLP/HTTP exporter, and calls lmdeck twice with the official
``openai`` SDK inside its span, passing the span's ``traceparent`` and a session id. lmdeck
shows one trace tree (the application's span as the root, both LLM calls under it) and one
session holding both calls; another team sees neither.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from typer.testing import CliRunner

from lmdeck.cli.main import app as cli
from lmdeck.testing.servers import GatewayProcess


def _team_keys(gw: GatewayProcess) -> dict[str, str]:
    """An inference key (the application's) and a viewer key of a new team."""
    admin = gw.headers()
    team = httpx.post(f"{gw.url}/api/teams", json={"name": f"agents-{uuid.uuid4().hex[:8]}"}, headers=admin, timeout=60)
    assert team.status_code in (200, 201), team.text
    keys = {}
    for role in ("inference", "viewer"):
        body = {"name": f"{role}-{uuid.uuid4().hex[:8]}", "role": role, "team_id": team.json()["id"]}
        created = httpx.post(f"{gw.url}/api/keys", json=body, headers=admin, timeout=60)
        assert created.status_code in (200, 201), created.text
        keys[role] = created.json()["key"]
    return keys


def _poll(gw: GatewayProcess, path: str, key: str, ready: Any, timeout: float = 60.0) -> dict[str, Any]:
    """GET ``path`` until ``ready(body)``: spans and traces are stored off the request path."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{gw.url}{path}", headers=gw.headers(key), timeout=15.0)
        if response.status_code == 200 and ready(response.json()):
            return dict(response.json())
        assert response.status_code in (200, 404, 503), response.text
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} not ready after {timeout}s: {response.status_code} {response.text[:500]}")
        time.sleep(0.1)


def test_an_application_span_and_its_llm_calls_form_one_tree_and_one_session(
    standard_gateway: GatewayProcess,
) -> None:
    gw = standard_gateway
    keys = _team_keys(gw)
    session = f"chat-{uuid.uuid4().hex[:12]}"
    exporter = OTLPSpanExporter(
        endpoint=f"{gw.url}/v1/traces", headers={"authorization": f"Bearer {keys['inference']}"}, timeout=15
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "support-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("support-agent")
    client = OpenAI(base_url=gw.base_url, api_key=keys["inference"], max_retries=0, timeout=20)
    with tracer.start_as_current_span("agent.run") as root:
        for question in ("find the order", "summarise it"):
            headers: dict[str, str] = {"x-lmdeck-session-id": session}
            inject(headers)  # the W3C traceparent of the current span
            reply = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": question}], extra_headers=headers
            )
            assert reply.http_response.headers["traceparent"].startswith(f"00-{root.get_span_context().trace_id:032x}-")
    provider.shutdown()  # exports the span (SimpleSpanProcessor sent it as it ended) and closes the exporter

    trace_id = f"{root.get_span_context().trace_id:032x}"
    root_id = f"{root.get_span_context().span_id:016x}"
    tree = _poll(
        gw,
        f"/api/traces/{trace_id}/tree",
        keys["viewer"],
        lambda body: len(body["spans"]) == 3,
    )
    assert tree["roots"] == [root_id]
    app, *calls = tree["spans"]
    assert (app["name"], app["source"], app["service_name"], app["depth"]) == ("agent.run", "otlp", "support-agent", 0)
    assert len(app["children"]) == 2 and [c["span_id"] for c in calls] == app["children"]
    for call in calls:
        assert (call["source"], call["parent_span_id"], call["depth"]) == ("lmdeck", root_id, 1)
        attributes = call["attributes"]
        assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.request.model"] == "chat"
        assert attributes["gen_ai.usage.output_tokens"] > 0 and attributes["gen_ai.conversation.id"] == session

    listed = _poll(gw, "/api/sessions", keys["viewer"], lambda body: any(s["id"] == session for s in body["data"]))
    mine = next(s for s in listed["data"] if s["id"] == session)
    assert mine["requests"] == 2 and mine["errors"] == 0 and mine["output_tokens"] > 0
    shown = _poll(gw, f"/api/sessions/{session}", keys["viewer"], lambda body: len(body["data"]) == 2)
    assert [t["id"] for t in shown["data"]] == [c["trace_record_id"] for c in calls]

    # The same from the command line.
    env = {"LMDECK_BASE_URL": gw.url, "LMDECK_API_KEY": keys["viewer"]}
    listing = CliRunner().invoke(cli, ["sessions", "list"], env=env)
    assert listing.exit_code == 0 and session in listing.output, listing.output
    detail = CliRunner().invoke(cli, ["sessions", "show", session], env=env)
    assert detail.exit_code == 0 and all(c["trace_record_id"] in detail.output for c in calls), detail.output

    # Another team sees neither the tree nor the session.
    other = _team_keys(gw)["viewer"]
    assert httpx.get(f"{gw.url}/api/traces/{trace_id}/tree", headers=gw.headers(other), timeout=60).status_code == 404
    assert httpx.get(f"{gw.url}/api/sessions/{session}", headers=gw.headers(other), timeout=60).status_code == 404
