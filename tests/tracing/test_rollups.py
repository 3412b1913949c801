"""Rollups kept by the store writer: totals equal the raw traces' exactly, after load, replay and rebuild."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.testing.traces import synthetic_traces
from lmdeck.tracing.codec import encode
from lmdeck.tracing.rollups import FULL, GRAINS, HOUR, LEVEL_GRAINS, MINUTE, ROUTE, rebuild, trace_rollups
from lmdeck.tracing.segments import existing_segments, segment_name
from lmdeck.tracing.sketch import RELATIVE_ACCURACY, Sketch
from lmdeck.tracing.spool import TraceSpool
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.writer import StoreWriter

START = 1_780_000_000.0 - 1_780_000_000.0 % 86400


def raw_totals(db: Database) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Per (route, team, key, status class): requests, errors, tokens, cost, cache hits, from the raw traces."""
    sql = text(
        "SELECT route, team_id, key_id, status_code / 100, COUNT(*), "
        "SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), SUM(input_tokens), SUM(output_tokens), "
        "SUM(cached_tokens), SUM(cost_micros), SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END) "
        "FROM traces GROUP BY route, team_id, key_id, status_code / 100"
    )
    with db.engine.connect() as conn:
        return {(r[0], r[1], r[2], f"{int(r[3])}xx"): tuple(int(v) for v in r[4:]) for r in conn.execute(sql)}


def rollup_totals(db: Database, grain: int) -> dict[tuple[Any, ...], tuple[int, ...]]:
    c = trace_rollups.c
    stmt = (
        select(
            c.route,
            c.team_id,
            c.key_id,
            c.status_class,
            func.sum(c.requests),
            func.sum(c.errors),
            func.sum(c.input_tokens),
            func.sum(c.output_tokens),
            func.sum(c.cached_tokens),
            func.sum(c.cost_micros),
            func.sum(c.cache_hits),
        )
        .where(c.grain == grain, c.level == FULL)
        .group_by(c.route, c.team_id, c.key_id, c.status_class)
    )
    with db.engine.connect() as conn:
        return {tuple(r[:4]): tuple(int(v) for v in r[4:]) for r in conn.execute(stmt)}


def route_totals(db: Database, grain: int) -> dict[tuple[Any, ...], tuple[int, ...]]:
    c = trace_rollups.c
    stmt = (
        select(c.route, c.status_class, func.sum(c.requests), func.sum(c.errors), func.sum(c.cost_micros))
        .where(c.grain == grain, c.level == ROUTE)
        .group_by(c.route, c.status_class)
    )
    with db.engine.connect() as conn:
        return {tuple(r[:2]): tuple(int(v) for v in r[2:]) for r in conn.execute(stmt)}


def assert_rollups_match(db: Database) -> None:
    raw = raw_totals(db)
    assert raw
    by_route: dict[tuple[Any, ...], list[int]] = {}
    for (route, _team, _key, status), values in raw.items():
        cell = by_route.setdefault((route, status), [0, 0, 0])
        cell[0] += values[0]
        cell[1] += values[1]
        cell[2] += values[5]
    for grain in LEVEL_GRAINS[FULL]:
        assert rollup_totals(db, grain) == raw, f"grain {grain}s differs from the raw traces"
    for grain in LEVEL_GRAINS[ROUTE]:
        assert route_totals(db, grain) == {k: tuple(v) for k, v in by_route.items()}, f"route level, {grain}s"
    assert rollup_totals(db, MINUTE) == {}, "the full level has no minute rows"


def test_rollups_equal_raw_totals_after_load_with_duplicates(database: Database) -> None:
    store = SQLTraceStore(database)
    records = synthetic_traces(3000, start=START, span_s=3 * 86400, seed=1)
    for at in range(0, len(records), 250):
        store.insert(records[at : at + 250])
    # Batches read twice, and a batch half old, half new: nothing is counted twice.
    store.insert(records[:250])
    store.insert(records[2900:] + synthetic_traces(40, start=START + 4 * 86400, span_s=600, seed=2))
    assert store.count() == 3040
    assert_rollups_match(database)


def test_rollups_equal_raw_totals_after_a_crash_and_replay(tmp_path: Path, database: Database) -> None:
    store = SQLTraceStore(database)
    records = synthetic_traces(1200, start=START, span_s=86400, seed=3)
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / segment_name(1)).write_bytes(b"".join(encode(r) for r in records[:700]))
    (spool / segment_name(2)).write_bytes(b"".join(encode(r) for r in records[700:]))
    # The process died after storing a batch but before removing the segments holding it.
    store.insert(records[:400])
    copy = tmp_path / "copy"
    shutil.copytree(spool, copy)
    for directory in (spool, copy):  # the replay, then the same segments once more
        log = TraceSpool(directory)
        log.open()
        writer = StoreWriter(log.segments, store, batch_size=128)
        writer.start()
        try:
            assert writer.wait_idle(30), "the writer did not catch up"
        finally:
            log.close()
            assert writer.stop(30)
        assert existing_segments(directory) == []
    assert store.count() == 1200
    assert_rollups_match(database)


def test_rebuild_restores_rollups_equal_to_raw_totals(database: Database) -> None:
    store = SQLTraceStore(database)
    store.insert(synthetic_traces(1500, start=START, span_s=2 * 86400, seed=4))
    before = {grain: rollup_totals(database, grain) for grain in GRAINS}  # the full level's
    with database.engine.begin() as conn:  # rollups damaged or lost
        conn.execute(trace_rollups.delete().where(trace_rollups.c.route == "demo"))
        conn.execute(trace_rollups.update().values(requests=trace_rollups.c.requests + 5))
    assert rebuild(database) == 1500
    assert {grain: rollup_totals(database, grain) for grain in GRAINS} == before
    assert_rollups_match(database)
    # A store written with rollups off catches up by a rebuild.
    SQLTraceStore(database, rollups=False).insert(synthetic_traces(300, start=START, span_s=3600, seed=5))
    assert rebuild(database) == 1800
    assert_rollups_match(database)


def test_hour_sketches_give_quantiles_within_the_stated_error(database: Database) -> None:
    store = SQLTraceStore(database)
    records = synthetic_traces(4000, start=START, span_s=6 * 3600, seed=6)
    store.insert(records)
    c = trace_rollups.c
    with database.engine.connect() as conn:
        rows = conn.execute(
            select(c.route, c.bucket, c.latency_sketch, c.ttft_sketch, c.latency_ms_sum).where(
                c.grain == HOUR, c.level == FULL
            )
        ).all()
    by: dict[tuple[str, int], Sketch] = {}
    ttft: dict[str, Sketch] = {}
    for route, bucket, latency, first, _ in rows:
        by.setdefault((route, bucket), Sketch()).merge(Sketch.loads(latency))
        ttft.setdefault(route, Sketch()).merge(Sketch.loads(first))
    for (route, bucket), sketch in by.items():
        values = sorted(
            r.latency_ms for r in records if r.route == route and int(r.created_at // HOUR) * HOUR == bucket
        )
        assert sketch.count == len(values)
        for q in (0.5, 0.95, 0.99):
            want = values[math.floor(q * (len(values) - 1))]
            assert abs((sketch.quantile(q) or 0) - want) <= RELATIVE_ACCURACY * want
    for route, sketch in ttft.items():
        values = sorted(r.ttft_ms for r in records if r.route == route and r.ttft_ms is not None)
        want = values[math.floor(0.9 * (len(values) - 1))]
        assert abs((sketch.quantile(0.9) or 0) - want) <= RELATIVE_ACCURACY * want
    assert math.isclose(sum(row[4] for row in rows), sum(r.latency_ms for r in records), rel_tol=1e-9)


def test_guardrail_actions_and_variants_are_rolled_up(database: Database) -> None:
    store = SQLTraceStore(database)
    now = START + 30.0
    store.insert(
        [
            TraceRecord(route="r", created_at=now, metadata={"variant": "b", "guardrail_actions": ["redact", "block"]}),
            TraceRecord(route="r", created_at=now, metadata={"variant": "b", "guardrail_actions": 1}),
            TraceRecord(route="r", created_at=now, status_code=503, metadata={}),
        ]
    )
    c = trace_rollups.c
    with database.engine.connect() as conn:
        rows = conn.execute(
            select(c.variant, c.status_class, c.requests, c.errors, c.guardrail_actions).where(
                c.grain == HOUR, c.level == FULL
            )
        ).all()
    assert {tuple(r) for r in rows} == {(None, "5xx", 1, 1, 0), ("b", "2xx", 2, 0, 3)}
