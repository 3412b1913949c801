"""OTLP exports decoded with the official schema: protobuf and JSON alike, bad ids rejected span by span."""

from __future__ import annotations

import pytest

from lmdeck.testing.otlp import CHILD, ROOT, TRACE, as_otlp_json, export, span
from lmdeck.tracing.otlp import JSON, PROTOBUF, OTLPDecodeError, decode_export, spans_of


def test_protobuf_and_json_decode_to_the_same_spans() -> None:
    request = export(span(ROOT), span(CHILD, parent=ROOT, name="retrieve"))
    from_protobuf = spans_of(
        decode_export(request.SerializeToString(), PROTOBUF), team_id="team-a", key_id="k1", received_at=5.0
    )
    from_json = spans_of(decode_export(as_otlp_json(request), JSON), team_id="team-a", key_id="k1", received_at=5.0)
    assert from_protobuf == from_json
    root, child = from_protobuf.spans
    assert (root.trace_id, root.span_id, root.parent_span_id) == (TRACE.hex(), ROOT.hex(), None)
    assert (child.parent_span_id, child.name, child.team_id, child.key_id) == (ROOT.hex(), "retrieve", "team-a", "k1")
    assert (root.kind, root.status, root.status_message) == ("internal", "error", "tool failed")
    assert (root.service_name, root.scope_name, root.end_ns - root.start_ns) == ("support-agent", "agent", 250_000_000)
    assert root.attributes == {
        "gen_ai.operation.name": "invoke_agent",
        "retrieval.documents": [0.5],
        "nested": {"k": 3},
        "blob": "AAE=",
        "ok": True,
    }


def test_spans_with_bad_ids_are_rejected_one_by_one() -> None:
    request = export(span(ROOT), span(b"\x00" * 8), span(CHILD, trace=b"\x01" * 3), span(CHILD, parent=b"\x02"))
    decoded = spans_of(decode_export(request.SerializeToString(), PROTOBUF), team_id=None, key_id=None, received_at=0)
    assert [s.span_id for s in decoded.spans] == [ROOT.hex()]
    assert decoded.rejected == 3 and decoded.reason


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"\xff\xff\xff", PROTOBUF, "protobuf"),
        (b"{not json", JSON, "not valid JSON"),
        (b"[1, 2]", JSON, "JSON object"),
        (b'{"resourceSpans": "no"}', JSON, "OTLP JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON, "hexadecimal"),
        (b"{}", "text/plain", "unsupported content type"),
        (b'{"a":' * 200 + b"1" + b"}" * 200, JSON, "nest"),
    ],
)
def test_what_is_not_an_export_is_refused_saying_why(body: bytes, content_type: str, says: str) -> None:
    with pytest.raises(OTLPDecodeError) as caught:
        decode_export(body, content_type)
    assert says in str(caught.value)


def test_unknown_json_fields_are_ignored_as_otlp_asks() -> None:
    body = b'{"resourceSpans": [{"futureField": 1, "scopeSpans": [{"spans": []}]}], "other": true}'
    assert len(decode_export(body, JSON).resource_spans) == 1
