"""What a trace query asks for, and the page it gets back.

    query = TraceQuery(route="demo", errors=True, since=parse_time("2026-01-01"), limit=20)
    page = store.query(query)
    more = store.query(query.after(page.next_cursor))

Traces come newest first; pages are cut by a keyset cursor (the last row's
``created_at`` and ``id``), so a page never skips or repeats a trace while new
ones arrive.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson

from lmdeck.protocol.traces import TraceRecord

MAX_LIMIT = 1000

#: Epoch seconds and status codes are read in ASCII digits only (``float()`` and ``int()`` take any script's).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_STATUS = re.compile(r"[0-9]{1,3}", re.ASCII)


class TraceFilterError(ValueError):
    """A filter cannot be understood; ``param`` names it and the message says what is expected."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


#: The largest prompt version a filter may name (the column is a 32-bit integer).
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: its last trace's creation time and id."""

    created_at: float
    id: str

    def encode(self) -> str:
        raw = orjson.dumps([self.created_at, self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            created_at, id_ = orjson.loads(raw)
            if not isinstance(id_, str) or not isinstance(created_at, int | float):
                raise ValueError
            return cls(float(created_at), id_)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise TraceFilterError("cursor", "not a cursor this API returned; pass next_cursor back as is") from None


@dataclass(frozen=True)
class TraceQuery:
    """Filters over the stored traces; every one given must match.

    >>> TraceQuery(route="demo", errors=True).limit
    50
    """

    route: str | None = None
    model: str | None = None
    status: int | None = None
    errors: bool | None = None
    key_id: str | None = None
    team_id: str | None = None
    user: str | None = None
    tag: str | None = None
    prompt: str | None = None
    #: The prompt version (with ``prompt``, that prompt's; alone, any prompt's version of that number).
    prompt_version: int | None = None
    #: The progressive-delivery release that served the request (``metadata.release``), either variant.
    release: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    client_request_id: str | None = None
    client_trace_id: str | None = None
    session_id: str | None = None
    #: Only traces of no team (``team_id`` must then be None): the scope of a caller without a team.
    without_team: bool = False
    since: float | None = None
    until: float | None = None
    min_latency_ms: float | None = None
    q: str | None = None
    cursor: Cursor | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise TraceFilterError("limit", f"must be between 1 and {MAX_LIMIT}, got {self.limit}")
        for name, value in vars(self).items():
            if isinstance(value, str) and "\x00" in value:
                raise TraceFilterError(name, "must not contain a NUL character")
        if self.prompt_version is not None and not 1 <= self.prompt_version <= MAX_VERSION:
            raise TraceFilterError(
                "prompt_version", f"must be a version number (1 to {MAX_VERSION}), got {self.prompt_version}"
            )
        if self.status is not None and not 100 <= self.status <= 599:
            raise TraceFilterError(
                "status", f"must be an HTTP status code (100-599), 'ok' or 'error', got {self.status}"
            )
        if self.without_team and self.team_id is not None:
            raise TraceFilterError("team_id", "cannot ask for one team and for traces of no team at once")
        if self.min_latency_ms is not None and (math.isnan(self.min_latency_ms) or self.min_latency_ms < 0):
            raise TraceFilterError("min_latency_ms", "must be a number of milliseconds, 0 or more")

    def after(self, cursor: str | Cursor | None) -> TraceQuery:
        """The same query, continuing after ``cursor`` (a page's ``next_cursor``)."""
        if isinstance(cursor, str):
            cursor = Cursor.decode(cursor)
        return replace(self, cursor=cursor)


@dataclass(frozen=True)
class TeamScope:
    """Whose traces a caller may see: every team's, or one team's (``team_id`` None: the traces of no team).

    A lookup applies the scope to its query before the store picks a row, so an id that
    two teams' traces share can only ever find the caller's own::

        scope = TeamScope(team_id="team-a", all_teams=False)
        query = scope.narrow(TraceQuery(client_request_id="retry-7"))   # team-a's only
    """

    team_id: str | None = None
    all_teams: bool = True

    def allows(self, team_id: str | None) -> bool:
        return self.all_teams or team_id == self.team_id

    def narrow(self, query: TraceQuery) -> TraceQuery | None:
        """``query`` limited to this scope; None when it asks for a team the scope excludes."""
        if self.all_teams:
            return query
        if self.team_id is None:
            return None if query.team_id is not None else replace(query, without_team=True)
        if query.without_team or query.team_id not in (None, self.team_id):
            return None
        return replace(query, team_id=self.team_id)


@dataclass(frozen=True)
class TracePage:
    """Traces newest first; ``next_cursor`` is None on the last page."""

    records: list[TraceRecord]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def parse_time(value: str | float, param: str = "since") -> float:
    """Epoch seconds from epoch seconds or ISO 8601 (a time without a zone is UTC)."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if _NUMBER.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
        raise TraceFilterError(param, "must be a finite number of epoch seconds")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TraceFilterError(
            param, f"expected epoch seconds or ISO 8601 such as 2026-01-31T12:00:00Z, got {value!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_status(value: str | int | None) -> tuple[int | None, bool | None]:
    """(status code, errors-only) from ``status``: a code, ``ok`` or ``error``."""
    if value is None or value == "":
        return None, None
    if isinstance(value, int):
        return value, None
    text = value.strip().lower()
    words: dict[str, tuple[int | None, bool | None]] = {
        "ok": (None, False),
        "error": (None, True),
        "errors": (None, True),
    }
    if text in words:
        return words[text]
    if not _STATUS.fullmatch(text):
        raise TraceFilterError("status", f"expected an HTTP status code, 'ok' or 'error', got {value!r}")
    return int(text), None
