"""``client.traces``: query the stored traces.

page = client.traces.list(route="demo", errors=True, limit=20)
for trace in page.data:
    print(trace.id, trace.status_code, trace.latency_ms)
same = client.traces.get(page.data[0].id)
everything = list(client.traces.iterate(team_id="t1"))  # follows the cursors
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from lmdeck.protocol.traces import TraceRecord
from lmdeck.sdk.namespace import Namespace


@dataclass(frozen=True)
class TracePage:
    """One page of traces, newest first; pass ``next_cursor`` back to get the next."""

    data: list[TraceRecord]
    next_cursor: str | None
    has_more: bool


def _when(value: float | str | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class Traces(Namespace):
    """The traces API (``/api/traces``)."""

    name = "traces"

    def list(
        self,
        *,
        route: str | None = None,
        model: str | None = None,
        status: int | str | None = None,
        errors: bool | None = None,
        key_id: str | None = None,
        team_id: str | None = None,
        user: str | None = None,
        tag: str | None = None,
        prompt: str | None = None,
        prompt_version: int | None = None,
        release: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        client_request_id: str | None = None,
        client_trace_id: str | None = None,
        session_id: str | None = None,
        since: float | str | datetime | None = None,
        until: float | str | datetime | None = None,
        min_latency_ms: float | None = None,
        q: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> TracePage:
        """Traces matching every filter given, newest first.

        ``status`` is an HTTP status code or ``"ok"`` / ``"error"``; ``since`` and
        ``until`` take epoch seconds, ISO 8601 or a datetime. ``request_id`` and
        ``trace_id`` are the ids lmdeck answered with; ``client_request_id`` and
        ``client_trace_id`` the ones the caller sent (``x-request-id``, ``traceparent``);
        ``prompt_version`` a prompt's version number and ``release`` the release that served it.
        """
        params: dict[str, Any] = {
            "route": route,
            "model": model,
            "status": status,
            "errors": errors,
            "key_id": key_id,
            "team_id": team_id,
            "user": user,
            "tag": tag,
            "prompt": prompt,
            "prompt_version": prompt_version,
            "release": release,
            "request_id": request_id,
            "trace_id": trace_id,
            "client_request_id": client_request_id,
            "client_trace_id": client_trace_id,
            "session_id": session_id,
            "since": _when(since),
            "until": _when(until),
            "min_latency_ms": min_latency_ms,
            "q": q,
            "cursor": cursor,
            "limit": limit,
        }
        body = self.client.get("/api/traces", params=params)
        return TracePage(
            data=[TraceRecord.from_dict(item) for item in body.get("data", [])],
            next_cursor=body.get("next_cursor"),
            has_more=bool(body.get("has_more")),
        )

    def iterate(self, **filters: Any) -> Iterator[TraceRecord]:
        """Every matching trace, newest first, fetching page after page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list(cursor=cursor, **filters)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    def get(self, id: str) -> TraceRecord:
        """One trace by its id; :class:`~lmdeck.sdk.errors.LMDeckError` (404) if it is not visible."""
        return TraceRecord.from_dict(self.client.get(f"/api/traces/{quote(id, safe='')}"))


NAMESPACE = Traces
