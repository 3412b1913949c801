from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmdeck.tracing.otel import OTelExporter
from lmdeck.tracing.record import TraceRecord


def _exporter() -> tuple[OTelExporter, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    return OTelExporter(SimpleSpanProcessor(memory)), memory


def test_span_carries_genai_attributes_and_announced_ids() -> None:
    otel, memory = _exporter()
    record = TraceRecord(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        parent_span_id="a3ce929d0e0e4736",
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
    assert span.parent is not None and format(span.parent.span_id, "016x") == record.parent_span_id
    attrs = dict(span.attributes or {})
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
