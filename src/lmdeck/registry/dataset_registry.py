"""Datasets served to the API: uploads, reads, and new versions cut from stored traces.

``from_traces`` turns each matching trace into a row whose ``input`` is the
request (chat messages, prompt or input), ``expected`` the answer the model
gave, ``metadata`` the route, model, prompt and bundle that produced it, and
``trace_id`` its provenance::

    datasets = DatasetRegistry(db, trace_store)
    version, created = await datasets.from_traces("support-evals", "route=support status=ok since=7d",
                                                  principal=developer)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio

from lmdeck.db import Database
from lmdeck.policy.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.registry.catalog import actor_of, check_name
from lmdeck.registry.datasets import DatasetRow, DatasetStore, DatasetVersion
from lmdeck.registry.trace_filter import TraceFilterParser
from lmdeck.tracing.query import TraceQuery
from lmdeck.tracing.record import TraceRecord
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.store import TraceStore

MAX_ROWS = 100_000


def _answer(response: Any) -> Any:
    if not isinstance(response, dict):
        return None
    if "content" in response and "choices" not in response:
        return response["content"]  # a streamed answer, as the record step keeps it
    choices = response.get("choices") or []
    if choices and isinstance(choices[0], dict):
        first = choices[0]
        message = first.get("message")
        if isinstance(message, dict):
            return message.get("content") if not message.get("tool_calls") else message
        return first.get("text")
    if "data" in response:
        return response["data"]
    return None


def _input(request: Any) -> Any:
    if not isinstance(request, dict):
        return None
    for key in ("messages", "prompt", "input"):
        if key in request:
            return {key: request[key]} if key == "messages" else request[key]
    return None


def row_from_trace(record: TraceRecord) -> DatasetRow | None:
    """The dataset row a trace stands for, or None when its bodies were not kept."""
    given = _input(record.request_body)
    if given is None:
        return None
    metadata = {
        "route": record.route,
        "upstream_model": record.upstream_model,
        "prompt_name": record.prompt_name,
        "prompt_version": record.prompt_version,
        "bundle_hash": record.bundle_hash,
        "created_at": record.created_at,
    }
    return DatasetRow(
        input=given,
        expected=_answer(record.response_body),
        metadata={k: v for k, v in metadata.items() if v is not None},
        trace_id=record.id,
    )


class DatasetRegistry:
    """Serving class of ``/api/registry/datasets``."""

    def __init__(self, db: Database, traces: TraceStore | None = None, parser: TraceFilterParser | None = None) -> None:
        self.store = DatasetStore(db)
        self.traces: TraceStore = traces or SQLTraceStore(db)
        self.parser = parser or TraceFilterParser.default()

    async def entries(self) -> list[dict[str, Any]]:
        return await anyio.to_thread.run_sync(self.store.entries)

    async def versions(self, name: str) -> list[DatasetVersion]:
        return await anyio.to_thread.run_sync(self.store.versions, name)

    async def version(self, name: str, ref: str) -> DatasetVersion:
        return await anyio.to_thread.run_sync(self.store.version, name, ref)

    async def rows(self, name: str, ref: str, offset: int, limit: int) -> tuple[DatasetVersion, list[DatasetRow]]:
        def read() -> tuple[DatasetVersion, list[DatasetRow]]:
            version = self.store.version(name, ref)
            return version, self.store.rows(name, version.version, offset=offset, limit=limit)

        return await anyio.to_thread.run_sync(read)

    async def create(
        self,
        name: str,
        rows: list[DatasetRow],
        *,
        principal: Principal,
        description: str | None = None,
        source: dict[str, Any] | None = None,
    ) -> tuple[DatasetVersion, bool]:
        check_name("dataset", name)
        if len(rows) > MAX_ROWS:
            raise APIError(400, f"a dataset version holds at most {MAX_ROWS} rows", param="rows")

        def write() -> tuple[DatasetVersion, bool]:
            return self.store.create(
                name, rows, actor=actor_of(principal), description=description, source=source or {"kind": "upload"}
            )

        return await anyio.to_thread.run_sync(write)

    def _matching(self, query: TraceQuery, predicates: list[Any], limit: int) -> list[TraceRecord]:
        found: list[TraceRecord] = []
        page_query = query
        while len(found) < limit:
            page = self.traces.query(page_query)
            found.extend(r for r in page.records if all(p(r) for p in predicates))
            if not page.next_cursor:
                break
            page_query = query.after(page.next_cursor)
        return found[:limit]

    async def from_traces(
        self, name: str, filter: str, *, principal: Principal, limit: int = 1000, description: str | None = None
    ) -> tuple[DatasetVersion, bool, int]:
        """(version, created, traces skipped for lack of bodies) for the traces ``filter`` matches."""
        check_name("dataset", name)
        if not 1 <= limit <= MAX_ROWS:
            raise APIError(400, f"limit must be between 1 and {MAX_ROWS}", param="limit")
        query, predicates = self.parser.parse(filter, limit=limit)
        if principal.role != "admin" and principal.team_id is not None:
            query = replace(query, team_id=principal.team_id)

        def build() -> tuple[DatasetVersion, bool, int]:
            records = self._matching(query, predicates, limit)
            rows = [row for row in (row_from_trace(r) for r in records) if row is not None]
            if not rows:
                raise APIError(
                    404,
                    f"no trace with a stored request matches {filter!r}"
                    + (f" ({len(records)} matched but their bodies were redacted)" if records else ""),
                    code="no_traces",
                )
            source = {"kind": "traces", "filter": filter, "traces": len(records)}
            version, created = self.store.create(
                name, rows, actor=actor_of(principal), description=description, source=source
            )
            return version, created, len(records) - len(rows)

        return await anyio.to_thread.run_sync(build)
