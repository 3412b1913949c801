from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.otel import OTelExporter


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
