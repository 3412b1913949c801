"""Stored OTLP spans: one row per team, trace and span, and pruned with the raw traces."""

from __future__ import annotations

from lmdeck.db import Database
from lmdeck.tracing.retention import Retention, prune
from lmdeck.tracing.rollups import DAY
from lmdeck.tracing.spans import SpanRow, insert_spans, spans_of_trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
NOW = 1_800_000_000.0


def row(span_id: str, received_at: float, team: str | None = "team-a") -> SpanRow:
    return SpanRow(
        trace_id=TRACE, span_id=span_id, name="step", start_ns=1, end_ns=2, team_id=team, received_at=received_at
    )


def test_a_span_sent_again_is_stored_once_per_team(database: Database) -> None:
    assert insert_spans(database, [row("a" * 16, NOW), row("a" * 16, NOW)]) == 1
    assert insert_spans(database, [row("a" * 16, NOW)]) == 0
    assert insert_spans(database, [row("a" * 16, NOW, team="team-b")]) == 1
    assert [s.team_id for s in spans_of_trace(database, TRACE, team_id="team-b", all_teams=False)] == ["team-b"]
    assert spans_of_trace(database, TRACE, team_id=None, all_teams=False) == []


def test_spans_go_with_the_raw_traces_counted_from_their_arrival(database: Database) -> None:
    insert_spans(database, [row("1" * 16, NOW - 40 * DAY), row("2" * 16, NOW - 2 * DAY)])
    pruned = prune(database, Retention(raw_days=30, minute_days=None, rollup_days=None), now=NOW)
    assert pruned.spans == 1
    assert [s.span_id for s in spans_of_trace(database, TRACE)] == ["2" * 16]
    assert prune(database, Retention(raw_days=None, minute_days=None, rollup_days=None), now=NOW).spans == 0
