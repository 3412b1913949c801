"""Signals over the rollups: totals and series equal the raw traces' for any window; quantiles within error."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import pytest

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.testing.traces import synthetic_traces
from lmdeck.tracing.rollups import DAY, HOUR, MINUTE
from lmdeck.tracing.signals import Piece, SignalError, Signals, plan
from lmdeck.tracing.sketch import RELATIVE_ACCURACY
from lmdeck.tracing.sql_store import SQLTraceStore

START = 1_780_000_000.0 - 1_780_000_000.0 % DAY
SPAN = 3 * DAY


@pytest.fixture
def loaded(database: Database) -> tuple[Signals, list[TraceRecord]]:
    records = synthetic_traces(3000, start=START, span_s=SPAN, seed=11)
    store = SQLTraceStore(database)
    for at in range(0, len(records), 500):
        store.insert(records[at : at + 500])
    return Signals(database, minute_days=None), records


def expected(
    records: list[TraceRecord], by: str, since: float, until: float | None, where: dict[str, Any] | None = None
) -> dict[Any, tuple[int, int, int, int, int]]:
    out: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for r in records:
        if r.created_at < since or (until is not None and r.created_at >= until):
            continue
        if where and any(getattr(r, k) != v for k, v in where.items()):
            continue
        row = out[getattr(r, by)]
        row[0] += 1
        row[1] += r.status_code >= 400
        row[2] += r.input_tokens
        row[3] += r.output_tokens
        row[4] += r.cost_micros
    return {k: tuple(v) for k, v in out.items()}  # type: ignore[misc]


def got(totals: list[Any], dim: str) -> dict[Any, tuple[int, int, int, int, int]]:
    return {
        t.group[dim]: (t.requests, t.errors, t.input_tokens, t.output_tokens, t.cost_micros)
        for t in totals
        if t.requests
    }


def test_windows_are_whole_buckets_of_the_coarsest_grain_and_raw_edges() -> None:
    assert plan(30.0, 7230.0) == [
        Piece(0, 30.0, 60.0),
        Piece(60, 60.0, 3600.0),
        Piece(3600, 3600.0, 7200.0),
        Piece(0, 7200.0, 7230.0),
    ]
    assert plan(DAY, None) == [Piece(DAY, DAY, None)]
    assert plan(10.0, 20.0) == [Piece(0, 10.0, 20.0)]
    assert plan(20.0, 10.0) == []


def test_totals_equal_the_raw_traces_for_any_window(loaded: tuple[Signals, list[TraceRecord]]) -> None:
    signals, records = loaded
    rng = random.Random(5)
    windows: list[tuple[float, float | None]] = [(START, None), (START, START + SPAN), (START + HOUR, START + DAY)]
    windows += [(START + rng.uniform(0, SPAN / 2), START + rng.uniform(SPAN / 2, SPAN)) for _ in range(6)]
    for since, until in windows:
        for by, dim in (("route", "route"), ("team_id", "team_id"), ("key_id", "key_id"), ("model", "upstream_model")):
            assert got(signals.totals(by=(by,), since=since, until=until), by) == expected(records, dim, since, until)
    where = {"team_id": "team-b"}
    since, until = START + 1234.5, START + 2 * DAY + 77.25
    assert got(signals.totals(by=("route",), since=since, until=until, where=where), "route") == expected(
        records, "route", since, until, where
    )


def test_series_per_minute_hour_and_day_equal_the_raw_traces(loaded: tuple[Signals, list[TraceRecord]]) -> None:
    signals, records = loaded
    for step, since, until in (
        (MINUTE, START + DAY, START + DAY + HOUR),
        (HOUR, START, START + DAY),
        (DAY, START, None),
    ):
        points = signals.series(step=step, by=("target",), since=since, until=until)
        want: dict[tuple[Any, int], list[int]] = defaultdict(lambda: [0, 0])
        for r in records:
            if r.created_at >= since and (until is None or r.created_at < until):
                cell = want[(r.target, int(r.created_at // step) * step)]
                cell[0] += 1
                cell[1] += r.status_code >= 400
        assert {(p.group["target"], p.bucket): [p.requests, p.errors] for p in points} == dict(want)
        assert [p.bucket for p in points] == sorted(p.bucket or 0 for p in points)


def test_latency_quantiles_per_route_per_hour_are_within_the_sketch_error(
    loaded: tuple[Signals, list[TraceRecord]],
) -> None:
    signals, records = loaded
    since, until = START + 600.5, START + DAY
    points = signals.series(step=HOUR, by=("route",), since=since, until=until, quantiles=(0.5, 0.95, 0.99))
    assert points
    step_since = math.floor(since / HOUR) * HOUR
    for point in points:
        values = sorted(
            r.latency_ms
            for r in records
            if r.route == point.group["route"]
            and step_since <= r.created_at < until
            and int(r.created_at // HOUR) * HOUR == point.bucket
        )
        assert point.requests == len(values)
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            want = values[math.floor(q * (len(values) - 1))]
            assert abs((point.quantiles[name] or 0) - want) <= RELATIVE_ACCURACY * want, (name, point.group)


def test_bad_questions_name_the_parameter(database: Database) -> None:
    signals = Signals(database)
    with pytest.raises(SignalError, match="by: unknown dimension 'colour'"):
        signals.totals(by=("colour",), since=0)
    with pytest.raises(SignalError, match="step"):
        signals.series(step=90, since=0)
    with pytest.raises(SignalError, match="quantiles"):
        signals.totals(since=0, quantiles=(2.0,))


def test_window_ends_older_than_the_minute_retention_are_read_to_the_hour(
    loaded: tuple[Signals, list[TraceRecord]],
) -> None:
    signals, records = loaded
    old = Signals(signals.db, minute_days=1, clock=lambda: START + SPAN + 10 * DAY)
    since, until = START + HOUR + 1234.5, START + DAY + 77.0
    got_total = sum(t.requests for t in old.totals(since=since, until=until))
    want = sum(1 for r in records if START + HOUR <= r.created_at < START + DAY + HOUR)
    assert got_total == want
