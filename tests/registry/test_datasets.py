from __future__ import annotations

import pytest

from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.traces import TraceRecord
from lmdeck.registry.dataset_registry import DatasetRegistry
from lmdeck.registry.datasets import DatasetStore, rows_digest
from lmdeck.tracing.sql_store import SQLTraceStore

DEVELOPER = Principal(key_id="dev-key", role="developer")
ROWS = [DatasetRow(input="2+2", expected="4"), DatasetRow(input="capital of France", expected="Paris")]


def test_same_rows_same_version_other_rows_next_version(db: Database) -> None:
    store = DatasetStore(db)
    v1, created = store.create("evals", ROWS, actor="key:a")
    again, created_again = store.create("evals", [r.model_copy() for r in ROWS], actor="key:b")
    v2, created_2 = store.create("evals", ROWS[:1], actor="key:a")
    assert created and not created_again and created_2
    assert again.version == v1.version == 1 and v2.version == 2
    assert v1.digest == rows_digest(ROWS) and v2.digest != v1.digest
    assert store.version("evals", v1.digest[:12]).version == 1
    with pytest.raises(APIError):
        store.version("evals", "%%%%%%%%")
    assert [r.expected for r in store.rows("evals", 1)] == ["4", "Paris"]
    assert [r.input for r in store.rows("evals", 1, offset=1, limit=5)] == ["capital of France"]


def test_order_is_part_of_the_content(db: Database) -> None:
    store = DatasetStore(db)
    a, _ = store.create("evals", ROWS, actor=None)
    b, created = store.create("evals", list(reversed(ROWS)), actor=None)
    assert created and a.digest != b.digest


def test_empty_and_unknown(db: Database) -> None:
    store = DatasetStore(db)
    with pytest.raises(APIError) as empty:
        store.create("evals", [], actor=None)
    assert empty.value.status == 400
    with pytest.raises(APIError) as missing:
        store.version("nope", 1)
    assert missing.value.status == 404


def chat_trace(route: str, question: str, answer: str, status: int = 200, team: str | None = None) -> TraceRecord:
    return TraceRecord(
        route=route,
        upstream_model="m-1",
        status_code=status,
        team_id=team,
        prompt_name="support-reply",
        prompt_version=2,
        bundle_hash="b" * 64,
        request_body={"model": route, "messages": [{"role": "user", "content": question}]},
        response_body={"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]},
    )


async def test_from_traces_keeps_provenance_and_skips_redacted(db: Database) -> None:
    traces = [
        chat_trace("demo", "2+2?", "4"),
        chat_trace("demo", "3+3?", "6"),
        chat_trace("demo", "boom", "", status=502),
        chat_trace("other", "x", "y"),
        TraceRecord(route="demo", status_code=200, request_body=None),
    ]
    SQLTraceStore(db).insert(traces)
    registry = DatasetRegistry(db)
    version, created, skipped = await registry.from_traces("demo-set", "route=demo status=ok", principal=DEVELOPER)
    assert created and version.row_count == 2 and skipped == 1
    assert version.source == {"kind": "traces", "filter": "route=demo status=ok", "traces": 3}
    _, rows = await registry.rows("demo-set", "1", 0, 10, DEVELOPER)
    by_trace = {r.trace_id: r for r in rows}
    assert set(by_trace) == {traces[0].id, traces[1].id}
    row = by_trace[traces[0].id]
    assert row.input == {"messages": [{"role": "user", "content": "2+2?"}]} and row.expected == "4"
    assert row.metadata["prompt_version"] == 2 and row.metadata["bundle_hash"] == "b" * 64
    again, created_again, _ = await registry.from_traces("demo-set", "route=demo status=ok", principal=DEVELOPER)
    assert not created_again and again.version == 1


async def test_from_traces_stays_inside_the_callers_team(db: Database) -> None:
    SQLTraceStore(db).insert([chat_trace("demo", "mine", "a", team="t1"), chat_trace("demo", "theirs", "b", team="t2")])
    member = Principal(key_id="k", role="developer", team_id="t1")
    version, _, _ = await DatasetRegistry(db).from_traces("team-set", "route=demo", principal=member)
    assert version.row_count == 1


async def test_from_traces_with_nothing_matching_is_a_404(db: Database) -> None:
    with pytest.raises(APIError) as info:
        await DatasetRegistry(db).from_traces("x", "route=nothing", principal=DEVELOPER)
    assert info.value.status == 404
