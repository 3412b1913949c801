"""What the trace detail page shows of one stored trace: its timing waterfall, its upstream attempts, its
guardrail verdicts and its span tree, each read from what the trace record (and its metadata) holds.

    phases = waterfall(record)       # [Phase("input guardrail mails", start_ms=0.0, ms=0.4, ...), Phase("upstream", ...)]
    rows = attempts(record)          # [Attempt(1, "flaky/m", "failed", 503, "connect", "..."), Attempt(2, ...)]
    verdicts(record)                 # metadata["guardrails"] as rows: guardrail, stage, action, finding, reason
    span_rows(tree)                  # a :class:`~lmdeck.tracing.trace_tree.TraceTree` as indented waterfall rows

Where a phase starts is known only for some: the input guardrails and the time to first token start with
the request; the upstream call ends before the output guardrails on a whole answer (or with the request
on a stream), so it is placed back from the end by its recorded length. A queue phase is not shown: the
trace records no time spent waiting for capacity (a request over a concurrency cap is refused, not queued).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.trace_tree import TraceTree


@dataclass(frozen=True)
class Phase:
    """One bar of the waterfall: ``start_ms`` and ``ms`` from the start of the request, and both as a
    percentage of the whole request (``offset``, ``share``) for drawing."""

    name: str
    start_ms: float
    ms: float
    offset: float
    share: float


@dataclass(frozen=True)
class Attempt:
    """One call to one target: ``outcome`` is ``failed`` or ``answered`` (the last, when the request got an
    answer), ``status`` the upstream's HTTP status when one came, ``kind`` and ``error`` why it failed."""

    number: int
    target: str
    outcome: str
    status: int | None
    kind: str
    error: str


def _percent(part: float, whole: float) -> float:
    return max(0.0, min(100.0, 100.0 * part / whole)) if whole > 0 else 0.0


def _guard_ms(record: TraceRecord, stage: str) -> float:
    """How long the sync guardrails of ``stage`` held the request: they run concurrently, so the longest."""
    lengths = [
        float(v.get("latency_ms") or 0.0)
        for v in verdicts(record)
        if v.get("stage") == stage and v.get("mode", "sync") == "sync"
    ]
    return max(lengths, default=0.0)


def waterfall(record: TraceRecord) -> list[Phase]:
    """The phases the record measured, in the order they happen; phases it did not measure are left out."""
    total = max(record.latency_ms, 0.001)
    spans: list[tuple[str, float, float]] = []
    for v in verdicts(record):
        if v.get("stage") == "input" and v.get("mode", "sync") == "sync" and v.get("latency_ms") is not None:
            spans.append((f"input guardrail {v.get('guardrail', '')}", 0.0, float(v["latency_ms"])))
    if record.ttft_ms is not None:
        spans.append(("time to first token", 0.0, record.ttft_ms))
    output_ms = _guard_ms(record, "output")
    if record.upstream_ms is not None:
        after = 0.0 if record.stream else output_ms
        spans.append(("upstream", max(0.0, total - after - record.upstream_ms), record.upstream_ms))
    for v in verdicts(record):
        if v.get("stage") == "output" and v.get("mode", "sync") == "sync" and v.get("latency_ms") is not None:
            ms = float(v["latency_ms"])
            spans.append((f"output guardrail {v.get('guardrail', '')}", max(0.0, total - ms), ms))
    spans.append(("total", 0.0, record.latency_ms))
    return [Phase(name, start, ms, _percent(start, total), _percent(ms, total)) for name, start, ms in spans]


def attempts(record: TraceRecord) -> list[Attempt]:
    """Every upstream attempt, in order: the failed ones (``metadata["upstream_errors"]``), then the one
    that answered; none when the request never reached a target (refused by a guardrail, a cache hit)."""
    rows: list[Attempt] = []
    for entry in record.metadata.get("upstream_errors") or []:
        if not isinstance(entry, dict):
            continue
        status = entry.get("status")
        rows.append(
            Attempt(
                len(rows) + 1,
                str(entry.get("target") or ""),
                "failed",
                status if isinstance(status, int) else None,
                str(entry.get("kind") or ""),
                str(entry.get("error") or ""),
            )
        )
    if record.target and record.status_code < 400 and not record.cache_hit:
        rows.append(Attempt(len(rows) + 1, record.target, "answered", None, "", ""))
    return rows


def verdicts(record: TraceRecord) -> list[dict[str, Any]]:
    """The guardrail verdicts of ``metadata["guardrails"]`` (guardrail, stage, mode, action, finding, score,
    reason, latency_ms; ``pending`` for an async one whose verdict came after the trace was written)."""
    return [v for v in record.metadata.get("guardrails") or [] if isinstance(v, dict)]


@dataclass(frozen=True)
class SpanRow:
    """One span of the tree, indented by ``depth``, placed on the trace's time line like a :class:`Phase`;
    ``record_id`` names lmdeck's trace record for a span that is one of its calls."""

    name: str
    depth: int
    source: str
    service: str
    status: str
    ms: float
    offset: float
    share: float
    record_id: str | None


def span_rows(tree: TraceTree) -> list[SpanRow]:
    """The tree's spans, depth first, each placed between the earliest start and the latest end."""
    if not tree.spans:
        return []
    start = min(int(s["start_time_unix_nano"]) for s in tree.spans)
    end = max(int(s["end_time_unix_nano"]) for s in tree.spans)
    whole = max(end - start, 1)
    return [
        SpanRow(
            name=str(s.get("name") or ""),
            depth=int(s.get("depth") or 0),
            source=str(s.get("source") or ""),
            service=str(s.get("service_name") or ""),
            status=str(s.get("status") or ""),
            ms=float(s.get("duration_ms") or 0.0),
            offset=_percent(int(s["start_time_unix_nano"]) - start, whole),
            share=_percent(int(s["end_time_unix_nano"]) - int(s["start_time_unix_nano"]), whole),
            record_id=s.get("trace_record_id"),
        )
        for s in tree.spans
    ]
