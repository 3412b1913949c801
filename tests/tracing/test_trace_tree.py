"""Trace trees: an application's spans and lmdeck's calls linked by parent span, scoped to one team."""

from __future__ import annotations

from typing import Any

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.spans import SpanRow, insert_spans, spans_of_trace
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.trace_tree import build_tree, read_tree

APP_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0_NS = 1_800_000_000_000_000_000


def app_span(span_id: str, parent: str | None, start: int, team: str | None = "team-a", **fields: Any) -> SpanRow:
    return SpanRow(
        trace_id=APP_TRACE,
        span_id=span_id,
        parent_span_id=parent,
        name=fields.pop("name", f"span-{span_id[-2:]}"),
        start_ns=T0_NS + start,
        end_ns=T0_NS + start + 10,
        team_id=team,
        received_at=1_800_000_000.0,
        **fields,
    )


def llm_call(n: int, parent: str, team: str | None = "team-a") -> TraceRecord:
    return TraceRecord(
        id=f"call{n}",
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        client_trace_id=APP_TRACE,
        parent_span_id=parent,
        created_at=1_800_000_000.0 + n,
        latency_ms=12.0,
        team_id=team,
        route="demo",
        provider="openai",
        upstream_model="gpt-x",
        input_tokens=7,
        output_tokens=3,
        session_id="chat-1",
    )


def test_spans_link_by_parent_depth_first_in_start_order() -> None:
    nodes = [
        {"span_id": "c", "parent_span_id": "a", "start_time_unix_nano": 3},
        {"span_id": "b", "parent_span_id": "a", "start_time_unix_nano": 2},
        {"span_id": "a", "parent_span_id": None, "start_time_unix_nano": 1},
        {"span_id": "d", "parent_span_id": "b", "start_time_unix_nano": 4},
        {"span_id": "orphan", "parent_span_id": "gone", "start_time_unix_nano": 0},
    ]
    tree = build_tree("t", nodes)
    assert tree.roots == ["orphan", "a"]
    assert [(n["span_id"], n["depth"]) for n in tree.spans] == [("orphan", 0), ("a", 0), ("b", 1), ("d", 2), ("c", 1)]
    assert next(n for n in tree.spans if n["span_id"] == "a")["children"] == ["b", "c"]


def test_a_cycle_of_parents_still_yields_every_span_once() -> None:
    nodes = [
        {"span_id": "x", "parent_span_id": "y", "start_time_unix_nano": 1},
        {"span_id": "y", "parent_span_id": "x", "start_time_unix_nano": 2},
        {"span_id": "self", "parent_span_id": "self", "start_time_unix_nano": 3},
    ]
    tree = build_tree("t", nodes)
    assert sorted(n["span_id"] for n in tree.spans) == ["self", "x", "y"]
    assert set(tree.roots) == {"self", "x"}


def test_lmdecks_calls_hang_under_the_application_span_that_made_them(database: Database) -> None:
    root, tool = "00f067aa0ba902b7", "b7ad6b7169203331"
    insert_spans(database, [app_span(root, None, 0, name="agent.run"), app_span(tool, root, 5, name="tool.search")])
    insert_spans(database, [app_span(root, None, 0, name="agent.run")])  # an exporter's retry: stored once
    SQLTraceStore(database).insert([llm_call(1, root), llm_call(2, tool)])
    tree = read_tree(database, APP_TRACE, "team-a", False)
    assert tree is not None and tree.roots == [root] and not tree.truncated
    shape = [(n["name"], n["depth"], n["source"]) for n in tree.spans]
    assert shape == [
        ("agent.run", 0, "otlp"),
        ("tool.search", 1, "otlp"),
        ("chat demo", 2, "lmdeck"),  # the call the tool made, then the agent's own call (which started later)
        ("chat demo", 1, "lmdeck"),
    ]
    call = tree.spans[3]
    assert call["parent_span_id"] == root and call["trace_record_id"] == "call1"
    assert call["attributes"]["gen_ai.operation.name"] == "chat"
    assert call["attributes"]["gen_ai.usage.input_tokens"] == 7
    assert call["attributes"]["gen_ai.conversation.id"] == "chat-1"
    # lmdeck's own trace id of a call is a tree of that call alone.
    own = read_tree(database, f"{1:032x}", "team-a", False)
    assert own is not None and [(n["span_id"], n["parent_span_id"]) for n in own.spans] == [(f"{1:016x}", None)]


def test_another_teams_spans_and_calls_never_join_a_tree(database: Database) -> None:
    root = "00f067aa0ba902b7"
    insert_spans(database, [app_span(root, None, 0), app_span(root, None, 0, team="team-b", name="intruder")])
    SQLTraceStore(database).insert([llm_call(1, root, team="team-b")])
    mine = read_tree(database, APP_TRACE, "team-a", False)
    assert mine is not None and [n["name"] for n in mine.spans] == ["span-b7"]
    theirs = read_tree(database, APP_TRACE, "team-b", False)
    assert theirs is not None and [n["name"] for n in theirs.spans] == ["intruder", "chat demo"]
    assert read_tree(database, APP_TRACE, "team-c", False) is None
    assert read_tree(database, APP_TRACE, None, False) is None
    assert len(spans_of_trace(database, APP_TRACE)) == 2  # an admin reads both teams' rows
