"""The SQL trace store: insert-or-ignore, every filter, keyset pagination (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import Cursor, TraceFilterError, TraceQuery, parse_status, parse_time
from lmdeck.tracing.retention import Retention
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.store import TraceAnalytics, TraceBackend

T0 = 1_800_000_000.0


def make(n: int, **fields: object) -> TraceRecord:
    base: dict[str, object] = {
        "id": f"rec{n:04d}",
        "created_at": T0 + n,
        "route": "demo",
        "upstream_model": "m-small",
        "status_code": 200,
        "latency_ms": 10.0 * n,
        "key_id": "k1",
        "team_id": "t1",
    }
    base.update(fields)
    return TraceRecord(**base)  # type: ignore[arg-type]


def ids(store: SQLTraceStore, **filters: object) -> list[str]:
    return [r.id for r in store.query(TraceQuery(limit=1000, **filters)).records]  # type: ignore[arg-type]


def test_insert_is_idempotent_and_round_trips_every_field(store: SQLTraceStore) -> None:
    record = make(
        1,
        user="u-7",
        tags=["a", "b", "a"],
        metadata={"env": "prod"},
        request_body={"messages": [{"role": "user", "content": "héllo"}]},
        response_body={"content": "hi"},
        ttft_ms=1.5,
        cost_micros=12_500,
        cache_write_tokens=3,
        prompt_name="greet",
        prompt_version=3,
        cache_hit=True,
        retries=2,
        fallback_used=True,
    )
    store.insert([record])
    store.insert([record, record])
    assert store.count() == 1
    back = store.get(record.id)
    assert back is not None
    expected = record.to_dict()
    assert back.to_dict() == expected
    assert store.get("missing") is None


def test_fields_without_a_column_travel_in_extra(store: SQLTraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from lmdeck.tracing import schema

    monkeypatch.setattr(schema, "_COLUMNS", schema._COLUMNS - {"bundle_hash"})
    store.insert([make(1, bundle_hash="abc123")])
    back = store.get("rec0001")
    assert back is not None and back.bundle_hash == "abc123"


def test_each_filter_selects_its_traces(store: SQLTraceStore) -> None:
    store.insert(
        [
            make(1),
            make(2, route="other", upstream_model="m-large"),
            make(3, status_code=502, error="upstream exploded", error_type="upstream_error"),
            make(4, key_id="k2", team_id="t2", user="alice"),
            make(5, tags=["beta", "eu"], prompt_name="greet", request_id="req-5", trace_id="f" * 32),
            make(6, status_code=429, request_body={"messages": [{"content": "Find the NEEDLE here"}]}),
            make(7, prompt_name="greet", prompt_version=2, metadata={"release": "warmer", "variant": "candidate"}),
            make(8, prompt_name="other", prompt_version=2, metadata={"release": "warmer-2", "variant": "baseline"}),
        ]
    )
    assert ids(store, route="other") == ["rec0002"]
    assert ids(store, model="m-large") == ["rec0002"]
    assert ids(store, status=502) == ["rec0003"]
    assert ids(store, errors=True) == ["rec0006", "rec0003"]
    assert len(ids(store, errors=False)) == 6
    assert ids(store, key_id="k2") == ["rec0004"]
    assert ids(store, team_id="t2") == ["rec0004"]
    assert ids(store, user="alice") == ["rec0004"]
    assert ids(store, tag="eu") == ["rec0005"]
    assert ids(store, tag="nope") == []
    assert ids(store, prompt="greet") == ["rec0007", "rec0005"]
    assert ids(store, prompt="greet", prompt_version=2) == ["rec0007"]
    assert ids(store, prompt_version=2) == ["rec0008", "rec0007"]
    assert ids(store, release="warmer") == ["rec0007"]
    assert ids(store, release="warm") == []
    assert ids(store, request_id="req-5") == ["rec0005"]
    assert ids(store, trace_id="f" * 32) == ["rec0005"]
    assert ids(store, since=T0 + 5, until=T0 + 7) == ["rec0006", "rec0005"]
    assert ids(store, until=T0 + 2) == ["rec0001"]
    assert ids(store, min_latency_ms=55.0, until=T0 + 7) == ["rec0006"]
    assert ids(store, q="needle") == ["rec0006"]
    assert ids(store, q="EXPLODED") == ["rec0003"]
    assert ids(store, q="50%_") == []
    assert ids(store, route="demo", team_id="t1", errors=True) == ["rec0006", "rec0003"]


def test_pages_cover_everything_once_newest_first(store: SQLTraceStore) -> None:
    # Several traces share a creation time: the cursor must break ties by id.
    records = [make(n, created_at=T0 + n // 3) for n in range(25)]
    store.insert(records)
    seen: list[str] = []
    query = TraceQuery(limit=4)
    pages = 0
    while True:
        page = store.query(query)
        pages += 1
        seen.extend(r.id for r in page.records)
        if not page.has_more:
            break
        assert page.next_cursor is not None
        query = query.after(page.next_cursor)
    expected = [r.id for r in sorted(records, key=lambda r: (r.created_at, r.id), reverse=True)]
    assert seen == expected
    assert pages == 7


def test_last_full_page_has_no_cursor(store: SQLTraceStore) -> None:
    store.insert([make(n) for n in range(4)])
    page = store.query(TraceQuery(limit=4))
    assert len(page.records) == 4 and page.next_cursor is None


def test_bad_filters_name_the_parameter() -> None:
    with pytest.raises(TraceFilterError, match="limit"):
        TraceQuery(limit=0)
    with pytest.raises(TraceFilterError, match="status"):
        TraceQuery(status=1000)
    with pytest.raises(TraceFilterError, match="prompt_version"):
        TraceQuery(prompt_version=0)
    with pytest.raises(TraceFilterError, match="prompt_version"):
        TraceQuery(prompt_version=2**63)
    with pytest.raises(TraceFilterError) as nul:
        TraceQuery(q="a\x00b")
    assert nul.value.param == "q"
    with pytest.raises(TraceFilterError) as info:
        Cursor.decode("not-a-cursor")
    assert info.value.param == "cursor"
    with pytest.raises(TraceFilterError, match="ISO 8601"):
        parse_time("yesterday")
    with pytest.raises(TraceFilterError, match="status"):
        parse_status("weird")


def test_time_and_status_parsing() -> None:
    assert parse_time("1800000000") == 1_800_000_000.0
    assert parse_time("2027-01-15T08:00:00Z") == parse_time("2027-01-15T08:00:00")
    assert parse_status("error") == (None, True)
    assert parse_status("ok") == (None, False)
    assert parse_status("404") == (404, None)
    cursor = Cursor(T0 + 0.125, "abc")
    assert Cursor.decode(cursor.encode()) == cursor


def test_values_postgresql_refuses_are_made_storable(store: SQLTraceStore) -> None:
    record = make(
        1,
        route="r" * 300,
        error="bad\x00byte",
        request_body={"messages": [{"content": "nul \x00 inside"}]},
        tags=["t\x00", "x" * 300],
    )
    store.insert([record])
    back = store.get(record.id)
    assert back is not None
    assert back.route == "r" * 256
    assert back.error == "bad\ufffdbyte"
    assert back.request_body == {"messages": [{"content": "nul \ufffd inside"}]}
    assert ids(store, tag="t\ufffd") == [record.id]


def test_filtered_listings_read_an_index_not_the_whole_table(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    db.migrate()
    store = SQLTraceStore(db)
    expected = {
        "team_time": TraceQuery(team_id="a"),
        "route_time": TraceQuery(route="demo"),
        "key_time": TraceQuery(key_id="k"),
        "prompt_time": TraceQuery(prompt="p"),
        "errors_time": TraceQuery(errors=True),
        "status_time": TraceQuery(status=500),
        "created_at": TraceQuery(),
    }
    with db.engine.connect() as conn:
        for index, query in expected.items():
            statement = store.select(query).compile(db.engine, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}"))
            assert f"ix_traces_{index}" in plan, (index, plan)
    db.dispose()


def test_the_sql_store_is_a_whole_trace_backend(store: SQLTraceStore) -> None:
    backend: TraceBackend = store  # checked by mypy as well
    assert isinstance(backend, TraceBackend) and isinstance(backend, TraceAnalytics)
    backend.insert([TraceRecord(id="b1", created_at=120.0, route="demo", cost_micros=7)])
    (total,) = backend.totals(by=("route",), since=0.0)
    assert (total.group, total.requests, total.cost_micros) == ({"route": "demo"}, 1, 7)
    assert [p.bucket for p in backend.series(step=60, since=0.0)] == [120]
    assert backend.rebuild_rollups() == 1
    assert backend.prune(Retention(raw_days=1, minute_days=1, rollup_days=1), now=10 * 86400.0).traces == 1
