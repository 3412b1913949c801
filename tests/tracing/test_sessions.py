"""Sessions from the stored traces: totals, order, paging and team scoping (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import TraceFilterError
from lmdeck.tracing.sessions import SessionQuery, SessionTraceQuery, list_sessions, session_traces
from lmdeck.tracing.sql_store import SQLTraceStore

T0 = 1_800_000_000.0


def call(n: int, session: str | None, team: str | None, **fields: Any) -> TraceRecord:
    return TraceRecord(
        id=f"s{n:03d}",
        created_at=T0 + n,
        session_id=session,
        team_id=team,
        route="demo",
        input_tokens=10,
        output_tokens=5,
        cost_micros=100,
        **fields,
    )


@pytest.fixture
def db(database: Database) -> Database:
    SQLTraceStore(database).insert(
        [
            call(1, "chat-1", "team-a"),
            call(2, "chat-1", "team-a", status_code=500),
            call(3, "chat-2", "team-a"),
            call(4, "chat-1", "team-b"),  # the same id in another team: another session
            call(5, None, "team-a"),
            call(6, "chat-1", "team-a"),
        ]
    )
    return database


def test_sessions_sum_their_traces_most_recently_active_first(db: Database) -> None:
    page = list_sessions(db, SessionQuery())
    assert [(s.id, s.team_id) for s in page.sessions] == [
        ("chat-1", "team-a"),
        ("chat-1", "team-b"),
        ("chat-2", "team-a"),
    ]
    first = page.sessions[0]
    assert (first.requests, first.errors, first.input_tokens, first.output_tokens) == (3, 1, 30, 15)
    assert (first.cost_micros, first.first_at, first.last_at) == (300, T0 + 1, T0 + 6)
    assert page.next_cursor is None
    assert first.to_dict()["cost"] == pytest.approx(0.0003)


def test_a_team_sees_only_its_own_sessions(db: Database) -> None:
    mine = list_sessions(db, SessionQuery(team_id="team-b", all_teams=False))
    assert [(s.id, s.requests) for s in mine.sessions] == [("chat-1", 1)]
    assert list_sessions(db, SessionQuery(team_id=None, all_teams=False)).sessions == []
    theirs = session_traces(db, SessionTraceQuery("chat-2", team_id="team-b", all_teams=False))
    assert theirs is None
    own = session_traces(db, SessionTraceQuery("chat-1", team_id="team-b", all_teams=False))
    assert own is not None and [r.id for r in own.records] == ["s004"]


def test_pages_of_sessions_and_of_a_sessions_traces_follow_their_cursors(db: Database) -> None:
    seen = []
    cursor = None
    while True:
        page = list_sessions(db, SessionQuery(limit=1, cursor=cursor))
        seen += [(s.id, s.team_id) for s in page.sessions]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [("chat-1", "team-a"), ("chat-1", "team-b"), ("chat-2", "team-a")]
    ids = []
    cursor = None
    while True:
        one = session_traces(db, SessionTraceQuery("chat-1", team_id="team-a", limit=2, cursor=cursor))
        assert one is not None and one.summary.requests == 3 and one.summary.team_id == "team-a"
        ids += [r.id for r in one.records]
        if one.next_cursor is None:
            break
        cursor = one.next_cursor
    assert ids == ["s001", "s002", "s006"]


def test_an_admin_reading_a_shared_session_id_gets_every_teams_traces(db: Database) -> None:
    both = session_traces(db, SessionTraceQuery("chat-1"))
    assert both is not None and both.summary.requests == 4 and both.summary.team_id is None
    assert [r.session_id for r in both.records] == ["chat-1"] * 4


def test_a_window_and_a_foreign_cursor(db: Database) -> None:
    page = list_sessions(db, SessionQuery(since=T0 + 3, until=T0 + 5))
    assert [(s.id, s.team_id, s.requests) for s in page.sessions] == [("chat-1", "team-b", 1), ("chat-2", "team-a", 1)]
    with pytest.raises(TraceFilterError) as caught:
        list_sessions(db, SessionQuery(cursor="not-a-cursor"))
    assert caught.value.param == "cursor"
    with pytest.raises(TraceFilterError):
        SessionQuery(limit=0)
