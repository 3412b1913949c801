import json
from pathlib import Path

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.otel import OTelExporter
from lmdeck.tracing.request_spans import RequestSpans


def _exporter() -> tuple[OTelExporter, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    return OTelExporter(SimpleSpanProcessor(memory)), memory


def test_span_carries_genai_attributes_and_announced_ids() -> None:
    otel, memory = _exporter()
    record = TraceRecord(
        trace_id="019a1b2c3d4e5f60718293a4b5c6d7e8",
        span_id="00f067aa0ba902b7",
        client_trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        parent_span_id="a3ce929d0e0e4736",
        client_request_id="caller-7",
        route="demo",
        provider="local",
        upstream_model="demo",
        input_tokens=11,
        output_tokens=4,
        latency_ms=20.0,
        request_body={"model": "demo", "temperature": 0.5, "max_tokens": 16},
    )
    otel.observe(record)
    (span,) = memory.get_finished_spans()
    assert span.name == "chat demo"
    assert format(span.context.trace_id, "032x") == record.trace_id
    assert format(span.context.span_id, "016x") == record.span_id
    # The caller's traceparent is a link, not the parent: lmdeck's span stays in lmdeck's trace.
    assert span.parent is None
    (link,) = span.links
    assert format(link.context.trace_id, "032x") == record.client_trace_id
    assert format(link.context.span_id, "016x") == record.parent_span_id
    attrs = dict(span.attributes or {})
    assert attrs["lmdeck.client_request_id"] == "caller-7"
    assert attrs["lmdeck.client_trace_id"] == record.client_trace_id
    assert attrs["lmdeck.trace_id"] == record.trace_id
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 4
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.request.max_tokens"] == 16
    assert span.end_time - span.start_time == 20_000_000


def test_root_span_uses_announced_trace_id_and_marks_errors() -> None:
    otel, memory = _exporter()
    record = TraceRecord(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        kind="embeddings",
        route="embed",
        status_code=502,
        error="upstream unreachable",
        error_type="upstream_error",
    )
    otel.observe(record)
    (span,) = memory.get_finished_spans()
    assert span.parent is None
    assert format(span.context.trace_id, "032x") == record.trace_id
    assert span.status.status_code.name == "ERROR"
    assert dict(span.attributes or {})["error.type"] == "upstream_error"
    assert span.name == "embeddings embed"


def test_guardrail_verdicts_and_the_data_policy_decision_are_span_events() -> None:
    otel, memory = _exporter()
    record = TraceRecord(route="support", latency_ms=5.0)
    record.metadata["guardrails"] = [
        {
            "guardrail": "pii",
            "stage": "input",
            "finding": "mask",
            "action": "mask",
            "score": 1.0,
            "latency_ms": 0.4,
            "spans": [{"start": 5, "end": 20, "entity": "EMAIL_ADDRESS", "score": 1.0}],
        },
        {"guardrail": "no-swear", "stage": "input", "finding": "pass", "action": "pass", "latency_ms": 0.01},
    ]
    record.metadata["data_policy"] = {"action": "reroute", "restricted": ["pii"], "reason": "only in_house targets"}
    otel.observe(record)
    (span,) = memory.get_finished_spans()
    names = [e.name for e in span.events]
    assert names == ["lmdeck.guardrail", "lmdeck.data_policy"]
    guard = dict(span.events[0].attributes or {})
    assert guard["lmdeck.guardrail.name"] == "pii" and guard["lmdeck.guardrail.action"] == "mask"
    assert list(guard["lmdeck.guardrail.entities"]) == ["EMAIL_ADDRESS"]
    assert dict(span.events[1].attributes or {})["lmdeck.data_policy.action"] == "reroute"


def _chat_request(otel: OTelExporter) -> RequestSpans:
    record = TraceRecord(
        route="support",
        provider="openai",
        latency_ms=12.0,
        input_tokens=9,
        output_tokens=3,
        request_body={
            "model": "support",
            "messages": [
                {"role": "system", "content": "You answer briefly."},
                {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}, {"type": "image_url"}]},
            ],
        },
        response_body={
            "id": "chatcmpl-1",
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "On its way."}, "finish_reason": "stop"}
            ],
        },
    )
    spans = RequestSpans(record.trace_id, record.span_id or "00f067aa0ba902b7", record=record)
    otel.export_request(spans, {"http.request.method": "POST"}, 200, spans.started_ns + 1, "POST /v1/chat/completions")
    return spans


def test_message_content_is_exported_only_when_asked() -> None:
    memory = InMemorySpanExporter()
    _chat_request(OTelExporter(SimpleSpanProcessor(memory), capture_content=True))
    (server,) = [s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER]
    (genai,) = [s for s in memory.get_finished_spans() if s.kind is SpanKind.INTERNAL]  # no upstream attempt
    assert genai.parent is not None and genai.parent.span_id == server.context.span_id
    attrs = dict(genai.attributes or {})
    assert json.loads(str(attrs["gen_ai.system_instructions"])) == [{"type": "text", "content": "You answer briefly."}]
    assert json.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}, {"type": "image_url"}]}
    ]
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "On its way."}], "finish_reason": "stop"}
    ]
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"

    memory.clear()
    _chat_request(OTelExporter(SimpleSpanProcessor(memory)))
    for span in memory.get_finished_spans():
        assert not {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"} & set(
            span.attributes or {}
        )


def test_content_capture_yields_to_redaction(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, otlp_endpoint="http://127.0.0.1:9/", tracing={"capture_content": True})
    exporter = OTelExporter.from_settings(settings)
    assert exporter is not None and exporter.capture_content
    exporter.shutdown()
    redacted = settings.model_copy(update={"tracing": settings.tracing.model_copy(update={"redact": "bodies"})})
    exporter = OTelExporter.from_settings(redacted)
    assert exporter is not None and not exporter.capture_content
    exporter.shutdown()


def test_prompt_version_is_a_string_and_unknown_usage_is_absent() -> None:
    otel, memory = _exporter()
    otel.observe(TraceRecord(route="faq", prompt_name="faq-answer", prompt_version=3, status_code=502))
    (span,) = memory.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.prompt.name"] == "faq-answer"
    assert attrs["gen_ai.prompt.version"] == "3"
    assert "gen_ai.usage.input_tokens" not in attrs and "gen_ai.usage.output_tokens" not in attrs
