"""Text search through the trigram indexes: substrings in any case, stored once, only what was kept."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing import search
from lmdeck.tracing.query import TraceQuery
from lmdeck.tracing.schema import traces
from lmdeck.tracing.search import matches
from lmdeck.tracing.sql_store import SQLTraceStore


def ids(store: SQLTraceStore, **filters: object) -> list[str]:
    return [r.id for r in store.query(TraceQuery(**filters)).records]  # type: ignore[arg-type]


def test_search_finds_substrings_of_errors_metadata_and_bodies_in_any_case(database: Database) -> None:
    store = SQLTraceStore(database)
    store.insert(
        [
            TraceRecord(id="t1", created_at=1.0, request_body={"messages": [{"content": "My REFUND request"}]}),
            TraceRecord(id="t2", created_at=2.0, response_body={"text": "the refunds desk"}, team_id="b"),
            TraceRecord(id="t3", created_at=3.0, error="Upstream timed out", status_code=504),
            TraceRecord(id="t4", created_at=4.0, metadata={"ticket": "ZX-42"}),
            TraceRecord(id="t5", created_at=5.0, request_body=None, response_body=None),  # bodies redacted
            TraceRecord(id="t6", created_at=6.0, request_body={"q": "100%_done"}),
        ]
    )
    assert matches("refund", database.engine.dialect.name, traces.c.id) is not None  # answered by the index
    assert ids(store, q="refund") == ["t2", "t1"]
    assert ids(store, q="Refund", team_id="b") == ["t2"]
    assert ids(store, q="timed OUT") == ["t3"]
    assert ids(store, q="zx-42") == ["t4"]
    assert ids(store, q="%_d") == ["t6"]  # LIKE's wildcards are plain characters
    assert ids(store, q="nothing like it") == []
    assert ids(store, q="42") == ["t4"]  # too short for a trigram: the scan answers
    # Inserted again (a replay): still one search row per trace.
    store.insert([TraceRecord(id="t1", created_at=1.0, request_body={"messages": [{"content": "refund"}]})])
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM trace_search WHERE record_id = 't1'")).scalar_one() == 1
    assert ids(store, q="refund") == ["t2", "t1"]


def test_common_and_rare_needles_find_the_same_traces(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLTraceStore(database)
    store.insert(
        [
            TraceRecord(id=f"t{i:02d}", created_at=float(i), team_id="a" if i % 2 else "b", error=f"Refund {i}")
            for i in range(30)
        ]
    )
    rare = ids(store, q="refund", team_id="a", limit=5)
    monkeypatch.setattr(search, "COMMON", 3)  # "refund" now counts as common: looked up per trace
    with database.engine.connect() as conn:
        assert search.is_common(conn, "refund") == (database.engine.dialect.name == "sqlite")
    assert ids(store, q="refund", team_id="a", limit=5) == rare == ["t29", "t27", "t25", "t23", "t21"]
    page = store.query(TraceQuery(q="refund", limit=20))
    assert [r.id for r in store.query(TraceQuery(q="refund", limit=20).after(page.next_cursor)).records] == [
        f"t{i:02d}" for i in range(9, -1, -1)
    ]
