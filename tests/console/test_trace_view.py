"""What the trace detail page makes of a record: phases placed on the request's time line, attempts in
order (failed ones, then the one that answered), verdicts, and a span tree as indented rows."""

from __future__ import annotations

from lmdeck.console.trace_view import attempts, span_rows, verdicts, waterfall
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.trace_tree import build_tree


def guarded(**fields: object) -> TraceRecord:
    metadata = {
        "guardrails": [
            {"guardrail": "pii", "stage": "input", "mode": "sync", "action": "mask", "latency_ms": 10.0},
            {"guardrail": "tone", "stage": "input", "mode": "async", "action": "pending"},
            {"guardrail": "leak", "stage": "output", "mode": "sync", "action": "pass", "latency_ms": 20.0},
        ],
        "upstream_errors": [{"target": "a/m", "status": 503, "kind": "http", "error": "busy"}, "junk"],
    }
    return TraceRecord(latency_ms=200.0, upstream_ms=100.0, ttft_ms=50.0, target="b/m", metadata=metadata, **fields)  # type: ignore[arg-type]


def test_phases_are_placed_from_what_the_record_measured() -> None:
    phases = {p.name: p for p in waterfall(guarded())}
    assert list(phases) == ["input guardrail pii", "time to first token", "upstream", "output guardrail leak", "total"]
    assert (phases["input guardrail pii"].start_ms, phases["input guardrail pii"].share) == (0.0, 5.0)
    # A whole answer: the upstream call ends before the output guardrails run.
    assert phases["upstream"].start_ms == 80.0 and phases["upstream"].offset == 40.0
    assert phases["output guardrail leak"].start_ms == 180.0
    # A stream: the upstream call ends with the request.
    assert {p.name: p for p in waterfall(guarded(stream=True))}["upstream"].start_ms == 100.0
    bare = waterfall(TraceRecord(latency_ms=0.0))
    assert [(p.name, p.share) for p in bare] == [("total", 0.0)]


def test_attempts_list_failures_then_the_answer_and_verdicts_skip_junk() -> None:
    rows = attempts(guarded())
    assert [(a.number, a.target, a.outcome, a.status) for a in rows] == [
        (1, "a/m", "failed", 503),
        (2, "b/m", "answered", None),
    ]
    assert [a.outcome for a in attempts(guarded(status_code=502))] == ["failed"]
    assert attempts(TraceRecord(target="b/m", cache_hit=True)) == []
    assert [v["guardrail"] for v in verdicts(TraceRecord(metadata={"guardrails": ["x", {"guardrail": "g"}]}))] == ["g"]


def test_span_rows_are_indented_and_placed_between_the_first_start_and_the_last_end() -> None:
    def node(span_id: str, parent: str | None, start: int, end: int, **extra: object) -> dict[str, object]:
        return {
            "span_id": span_id,
            "parent_span_id": parent,
            "start_time_unix_nano": start,
            "end_time_unix_nano": end,
            "name": span_id,
            "duration_ms": (end - start) / 1e6,
            **extra,
        }

    tree = build_tree("t" * 32, [node("root", None, 0, 1000), node("call", "root", 500, 1000, trace_record_id="r1")])
    rows = span_rows(tree)
    assert [(r.name, r.depth, r.offset, r.share, r.record_id) for r in rows] == [
        ("root", 0, 0.0, 100.0, None),
        ("call", 1, 50.0, 50.0, "r1"),
    ]
    assert span_rows(build_tree("t" * 32, [])) == []
