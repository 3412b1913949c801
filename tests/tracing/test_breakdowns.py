"""Breakdowns by user and by tag: their totals equal the raw traces' exactly, after load, replay and rebuild,
for any window, and a team's breakdown holds only its traces."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.testing.traces import synthetic_traces
from lmdeck.tracing.breakdowns import DIMENSIONS, Dimension, trace_breakdowns
from lmdeck.tracing.codec import encode
from lmdeck.tracing.rollups import rebuild
from lmdeck.tracing.segments import existing_segments, segment_name
from lmdeck.tracing.signals import Signals
from lmdeck.tracing.spool import TraceSpool
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.writer import StoreWriter

START = 1_780_000_000.0 - 1_780_000_000.0 % 86400
TAGS = ("checkout", "search", "nightly", "eval")

Sums = dict[Any, tuple[int, int, int, int, int]]


def tagged(n: int, *, seed: int, span_s: float = 2 * 86400, start: float = START) -> list[TraceRecord]:
    """Synthetic traces, some without a user, with zero to three tags each."""
    rng = random.Random(seed)
    records = synthetic_traces(n, start=start, span_s=span_s, seed=seed)
    for record in records:
        record.tags = rng.sample(TAGS, rng.randrange(4))
        if rng.random() < 0.1:
            record.user = None
    return records


def raw(db: Database, dimension: str, since: float, until: float, team: str | None = None) -> Sums:
    """Requests, errors, input/output tokens and cost per user or tag, summed from the raw traces."""
    value = "traces.user_id" if dimension == "user" else "trace_tags.tag"
    join = " JOIN trace_tags ON trace_tags.record_id = traces.id" if dimension == "tag" else ""
    scope = " AND traces.team_id = :team" if team is not None else ""
    sql = text(
        f"SELECT {value}, COUNT(*), SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), SUM(input_tokens), "
        f"SUM(output_tokens), SUM(cost_micros) FROM traces{join} "
        f"WHERE created_at >= :since AND created_at < :until{scope} GROUP BY {value}"
    )
    with db.engine.connect() as conn:
        rows = conn.execute(sql, {"since": since, "until": until, "team": team})
        return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}


def signalled(db: Database, dimension: Dimension, since: float, until: float, team: str | None = None) -> Sums:
    found = Signals(db, minute_days=None).breakdown(dimension, since=since, until=until, team_id=team)
    return {t.group[dimension]: (t.requests, t.errors, t.input_tokens, t.output_tokens, t.cost_micros) for t in found}


#: Windows on day and hour boundaries, and ones whose ends are read from the raw traces.
WINDOWS = (
    (START, START + 4 * 86400),
    (START + 3600, START + 30 * 3600),
    (START + 1234.5, START + 86400 + 977.25),
    (START + 600, START + 1500),
)


def assert_breakdowns_match(db: Database) -> None:
    for dimension in DIMENSIONS:
        for since, until in WINDOWS:
            want = raw(db, dimension, since, until)
            assert want, (dimension, since, until)
            assert signalled(db, dimension, since, until) == want, (dimension, since - START, until - START)


def test_breakdowns_equal_raw_totals_after_load_with_duplicates(database: Database) -> None:
    store = SQLTraceStore(database)
    records = tagged(2000, seed=11)
    for at in range(0, len(records), 250):
        store.insert(records[at : at + 250])
    store.insert(records[:250])  # read twice: counted once
    store.insert(records[1900:] + tagged(30, seed=12, start=START + 3 * 86400, span_s=600))
    assert store.count() == 2030
    assert_breakdowns_match(database)
    with database.engine.connect() as conn:
        dimensions = {row[0] for row in conn.execute(text("SELECT DISTINCT dimension FROM trace_breakdowns"))}
    assert dimensions == {"user", "tag"}
    assert None in signalled(database, "user", START, START + 4 * 86400)  # traces without a user have a row


def test_breakdowns_equal_raw_totals_after_a_crash_and_replay(tmp_path: Path, database: Database) -> None:
    store = SQLTraceStore(database)
    records = tagged(1000, seed=13)
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / segment_name(1)).write_bytes(b"".join(encode(r) for r in records[:600]))
    (spool / segment_name(2)).write_bytes(b"".join(encode(r) for r in records[600:]))
    store.insert(records[:300])  # stored before the crash, segments not yet removed
    copy = tmp_path / "copy"
    shutil.copytree(spool, copy)
    for directory in (spool, copy):
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
    assert store.count() == 1000
    assert_breakdowns_match(database)


def test_rebuild_restores_breakdowns(database: Database) -> None:
    store = SQLTraceStore(database)
    store.insert(tagged(1200, seed=14))
    with database.engine.begin() as conn:  # damaged or lost
        conn.execute(trace_breakdowns.delete().where(trace_breakdowns.c.dimension == "tag"))
        conn.execute(trace_breakdowns.update().values(cost_micros=trace_breakdowns.c.cost_micros + 7))
    assert rebuild(database) == 1200
    assert_breakdowns_match(database)
    # Traces stored with rollups off are added by a rebuild.
    SQLTraceStore(database, rollups=False).insert(tagged(200, seed=15, span_s=3600))
    assert rebuild(database) == 1400
    assert_breakdowns_match(database)


def test_a_team_breakdown_holds_only_its_traces(database: Database) -> None:
    store = SQLTraceStore(database)
    records = tagged(1500, seed=16)
    store.insert(records)
    teams = {r.team_id for r in records}
    assert len(teams) > 1
    for team in teams:
        for dimension in DIMENSIONS:
            for since, until in WINDOWS[:3]:
                want = raw(database, dimension, since, until, team)
                assert signalled(database, dimension, since, until, team) == want
    # The other teams' users and tags do not show even by name.
    one, other = sorted(t for t in teams if t is not None)[:2]
    store.insert([TraceRecord(team_id=other, user="only-other", tags=["only-other"], created_at=START + 10)])
    assert "only-other" not in signalled(database, "user", START, START + 86400, one)
    assert "only-other" in signalled(database, "user", START, START + 86400, other)
    assert "only-other" not in signalled(database, "tag", START, START + 86400, one)
