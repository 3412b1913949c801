"""``client.sessions``: requests grouped by the session (conversation) id their callers sent.

page = client.sessions.list(since="2026-01-31T00:00:00Z", limit=20)
for session in page.data:
    print(session.id, session.requests, session.cost_micros)
one = client.sessions.get(page.data[0].id)       # its totals and its traces, oldest first
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from urllib.parse import quote

from lmdeck.protocol.traces import TraceRecord
from lmdeck.sdk.namespace import Namespace


@dataclass(frozen=True)
class Session:
    """One session's totals: requests, errors, tokens, cost in micro-dollars, first and last request
    time (epoch seconds)."""

    id: str
    team_id: str | None
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_micros: int
    first_at: float
    last_at: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class SessionPage:
    """Sessions, most recently active first; pass ``next_cursor`` back for the next page."""

    data: list[Session]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class SessionDetail:
    """One session: its totals and a page of its traces, oldest first."""

    session: Session
    traces: list[TraceRecord]
    next_cursor: str | None
    has_more: bool


def _when(value: float | str | datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


class Sessions(Namespace):
    """The sessions API (``/api/sessions``)."""

    name = "sessions"

    def list(
        self,
        *,
        team_id: str | None = None,
        since: float | str | datetime | None = None,
        until: float | str | datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> SessionPage:
        """Sessions with a request in ``[since, until)``, most recently active first."""
        params = {"team_id": team_id, "since": _when(since), "until": _when(until), "cursor": cursor, "limit": limit}
        body = self.client.get("/api/sessions", params=params)
        return SessionPage(
            data=[Session.from_dict(item) for item in body.get("data", [])],
            next_cursor=body.get("next_cursor"),
            has_more=bool(body.get("has_more")),
        )

    def get(
        self, session_id: str, *, team_id: str | None = None, cursor: str | None = None, limit: int = 200
    ) -> SessionDetail:
        """One session; :class:`~lmdeck.sdk.errors.LMDeckError` (404) if the caller's team has none of it."""
        params = {"team_id": team_id, "cursor": cursor, "limit": limit}
        body = self.client.get(f"/api/sessions/{quote(session_id, safe='')}", params=params)
        return SessionDetail(
            session=Session.from_dict(body),
            traces=[TraceRecord.from_dict(item) for item in body.get("data", [])],
            next_cursor=body.get("next_cursor"),
            has_more=bool(body.get("has_more")),
        )


NAMESPACE = Sessions
