"""``ServerSpanMiddleware``: one SERVER span per request, announced only when exported; refusals rate-limited."""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import Receive, Scope, Send

from lmdeck.app.middleware.request_id import RequestIdMiddleware, joined_tracestate
from lmdeck.app.middleware.server_span import ServerSpanMiddleware, TokenBucket
from lmdeck.tracing.otel import OTelExporter


def answering(status: int):  # type: ignore[no-untyped-def]
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def _stack(
    status: int, refused_per_second: float = 10.0
) -> tuple[RequestIdMiddleware, ServerSpanMiddleware, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    spans = ServerSpanMiddleware(answering(status), OTelExporter(SimpleSpanProcessor(memory)), refused_per_second)
    return RequestIdMiddleware(spans), spans, memory


async def _send(app: RequestIdMiddleware, count: int, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lmdeck") as client:
        return [await client.post("/v1/chat/completions", headers=headers) for _ in range(count)]


async def test_a_flood_of_refusals_exports_no_more_spans_than_the_bucket_holds() -> None:
    app, middleware, memory = _stack(401, refused_per_second=3.0)
    middleware.refused = TokenBucket(3.0, clock=lambda: 0.0)  # time stands still: no refill
    responses = await _send(app, 200)
    assert {r.status_code for r in responses} == {401}
    exported = memory.get_finished_spans()
    assert len(exported) == 3
    announced = [r.headers["traceparent"].split("-")[2] for r in responses if "traceparent" in r.headers]
    # Exactly the exported spans are announced: no response names a span that was never exported.
    assert announced == [format(s.context.span_id, "016x") for s in exported]
    assert all(s.attributes["http.response.status_code"] == 401 for s in exported)


async def test_answers_are_not_rate_limited() -> None:
    app, _, memory = _stack(200, refused_per_second=0.0)
    responses = await _send(app, 5)
    assert all("traceparent" in r.headers for r in responses)
    assert len(memory.get_finished_spans()) == 5


async def test_an_unsampled_caller_gets_no_span_and_no_traceparent() -> None:
    app, _, memory = _stack(200)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    (response,) = await _send(app, 1, {"traceparent": traceparent})
    assert response.status_code == 200
    assert "traceparent" not in response.headers
    assert memory.get_finished_spans() == ()


def test_tracestate_keeps_whole_entries_within_512_characters() -> None:
    assert joined_tracestate(["a=1, b=2", "c=3"]) == "a=1,b=2,c=3"
    long = [f"k{i}={'x' * 60}" for i in range(20)]
    kept = joined_tracestate(long)
    assert kept is not None and len(kept) <= 512 and kept.split(",") == long[: len(kept.split(","))]


async def test_probes_get_no_span() -> None:
    memory = InMemorySpanExporter()
    app = RequestIdMiddleware(
        ServerSpanMiddleware(
            answering(200), OTelExporter(SimpleSpanProcessor(memory)), unspanned_paths=["/health/live"]
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lmdeck") as client:
        probe = await client.get("/health/live")
    assert "traceparent" not in probe.headers
    assert memory.get_finished_spans() == ()
