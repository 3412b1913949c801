"""``POST /v1/traces`` and ``GET /api/traces/{trace_id}/tree`` in-process: both encodings, bad input as 4xx,
team scoping, and storage off the request path."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from lmdeck.app.factory import create_app
from lmdeck.pipeline.principal import Principal
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.testing.otlp import CHILD, ROOT, TRACE, as_otlp_json, export, span
from lmdeck.tracing.span_writer import SpanWriter
from lmdeck.tracing.spans import spans_of_trace

ADMIN_KEY = "sk-lmdeck-otlp-Qm7Tz2Wn8Kc4Rb1Yh6Vx3Lp9Gs5Jd0F"
PRINCIPALS = {
    "sk-app-a": Principal(key_id="ka", role="inference", team_id="team-a"),
    "sk-viewer-a": Principal(key_id="kva", role="viewer", team_id="team-a"),
    "sk-app-b": Principal(key_id="kb", role="inference", team_id="team-b"),
    "sk-viewer-b": Principal(key_id="kvb", role="viewer", team_id="team-b"),
}
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


class TableAuthenticator:
    """Keys of the test principals, then whatever the gateway already accepts."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    async def authenticate(self, token: str) -> Principal | None:
        return PRINCIPALS.get(token) or await self.fallback.authenticate(token)


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("LMDECK_TEST_OTLP_ADMIN_KEY", ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": "LMDECK_TEST_OTLP_ADMIN_KEY"},
            "tracing": {"analytics_processes": False, "otlp_max_body_bytes": 8192, "otlp_queue_spans": 4},
        }
    )
    app = create_app(settings)
    app.state.gateway.authenticator = TableAuthenticator(app.state.gateway.authenticator)
    async with in_process_client(app) as http:
        http.app = app  # type: ignore[attr-defined]
        yield http


def auth(key: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **headers}


def stored(client: httpx.AsyncClient) -> None:
    assert client.app.state.gateway.span_writer.wait_idle(10.0)  # type: ignore[attr-defined]


async def test_protobuf_and_json_exports_are_stored_under_the_keys_team_and_shown_as_a_tree(
    client: httpx.AsyncClient,
) -> None:
    body = export(span(ROOT, name="agent.run")).SerializeToString()
    answer = await client.post("/v1/traces", content=body, headers=auth("sk-app-a", **PROTOBUF))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(answer.content).HasField("partial_success")
    child = as_otlp_json(export(span(CHILD, parent=ROOT, name="retrieve")))
    answer = await client.post(
        "/v1/traces", content=gzip.compress(child), headers=auth("sk-app-a", **JSON, **{"content-encoding": "gzip"})
    )
    assert answer.status_code == 200 and answer.json() == {}
    stored(client)
    tree = await client.get(f"/api/traces/{TRACE.hex()}/tree", headers=auth("sk-viewer-a"))
    assert tree.status_code == 200, tree.text
    body_json = tree.json()
    assert body_json["object"] == "trace_tree" and body_json["roots"] == [ROOT.hex()]
    assert [(s["name"], s["depth"]) for s in body_json["spans"]] == [("agent.run", 0), ("retrieve", 1)]
    # Another team sees nothing of it: a 404, as if it did not exist.
    theirs = await client.get(f"/api/traces/{TRACE.hex()}/tree", headers=auth("sk-viewer-b"))
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "trace_not_found"
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    assert {s.team_id for s in spans_of_trace(gateway.db, TRACE.hex())} == {"team-a"}


async def test_another_team_sending_the_same_trace_id_keeps_to_its_own_tree(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/traces", content=export(span(ROOT, name="mine")).SerializeToString(), headers=auth("sk-app-a", **PROTOBUF)
    )
    await client.post(
        "/v1/traces",
        content=export(span(ROOT, name="theirs")).SerializeToString(),
        headers=auth("sk-app-b", **PROTOBUF),
    )
    stored(client)
    for viewer, name in (("sk-viewer-a", "mine"), ("sk-viewer-b", "theirs")):
        tree = (await client.get(f"/api/traces/{TRACE.hex()}/tree", headers=auth(viewer))).json()
        assert [s["name"] for s in tree["spans"]] == [name]


async def test_spans_with_bad_ids_get_a_partial_success(client: httpx.AsyncClient) -> None:
    body = export(span(ROOT), span(b"\x00" * 8)).SerializeToString()
    answer = await client.post("/v1/traces", content=body, headers=auth("sk-app-a", **PROTOBUF))
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 1 and "span_id" in partial.error_message
    answer = await client.post(
        "/v1/traces", content=as_otlp_json(export(span(ROOT), span(b"\x00" * 8))), headers=auth("sk-app-a", **JSON)
    )
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"


async def test_bad_exports_are_refused_with_4xx(client: httpx.AsyncClient) -> None:
    bad = await client.post("/v1/traces", content=b"\xff\xff\xff", headers=auth("sk-app-a", **PROTOBUF))
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/x-protobuf"
    assert "protobuf" in Status.FromString(bad.content).message
    bad_json = await client.post("/v1/traces", content=b"{nope", headers=auth("sk-app-a", **JSON))
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_otlp"
    wrong_type = await client.post(
        "/v1/traces", content=b"x", headers=auth("sk-app-a", **{"content-type": "text/plain"})
    )
    assert wrong_type.status_code == 415 and wrong_type.json()["error"]["message"]
    wrong_encoding = await client.post(
        "/v1/traces", content=b"x", headers=auth("sk-app-a", **JSON, **{"content-encoding": "br"})
    )
    assert wrong_encoding.status_code == 415
    not_gzip = await client.post(
        "/v1/traces", content=b"x", headers=auth("sk-app-a", **JSON, **{"content-encoding": "gzip"})
    )
    assert not_gzip.status_code == 400
    big = export(*(span(bytes([1, 2, 3, 4, 5, 6, 7, n + 1]), name="x" * 100) for n in range(100))).SerializeToString()
    assert len(big) > 8192
    too_big = await client.post("/v1/traces", content=big, headers=auth("sk-app-a", **PROTOBUF))
    assert too_big.status_code == 413
    bomb = gzip.compress(b" " * 100_000)
    inflated = await client.post(
        "/v1/traces", content=bomb, headers=auth("sk-app-a", **JSON, **{"content-encoding": "gzip"})
    )
    assert inflated.status_code == 413 and inflated.json()["error"]["code"] == "body_too_large"
    assert (await client.post("/v1/traces", content=b"{}", headers=JSON)).status_code == 401
    tree = await client.get("/api/traces/not-hex/tree", headers=auth("sk-viewer-a"))
    assert tree.status_code == 400 and tree.json()["error"]["param"] == "trace_id"
    assert (await client.get(f"/api/traces/{TRACE.hex()}/tree", headers=auth("sk-app-a"))).status_code == 403


async def test_a_full_span_queue_answers_503_and_the_request_never_waits_for_the_store(
    client: httpx.AsyncClient,
) -> None:
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    # A writer whose thread never runs: what is accepted stays queued, so the answer cannot have waited for it.
    writer = gateway.span_writer = SpanWriter(gateway.db, max_pending=4, autostart=False)
    spans = [span(bytes([9, 9, 9, 9, 9, 9, 9, n + 1])) for n in range(3)]
    first = await client.post(
        "/v1/traces", content=export(*spans).SerializeToString(), headers=auth("sk-app-a", **PROTOBUF)
    )
    assert first.status_code == 200 and writer.pending == 3 and writer.stored == 0
    full = await client.post(
        "/v1/traces", content=export(*spans).SerializeToString(), headers=auth("sk-app-a", **PROTOBUF)
    )
    assert full.status_code == 503 and full.headers["retry-after"]
    assert Status.FromString(full.content).code == 14  # UNAVAILABLE: exporters retry it
