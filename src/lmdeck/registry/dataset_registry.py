"""Datasets served to the API: uploads, reads, and new versions cut from stored traces.

``from_traces`` turns each matching trace into a row whose ``input`` is the
request (chat messages, prompt or input), ``expected`` the answer the model
gave, ``metadata`` the route, model, prompt and bundle that produced it, and
``trace_id`` its provenance. With ``corrections`` (``feedback`` or ``annotations``) a row's
``expected`` is the correction a person gave on its trace instead, marked
``metadata.source = "correction"`` (the model's own answer: ``"trace"``); rows without a
correction are kept or, with ``keep_uncorrected=False``, dropped. A dataset belongs to the
team whose traces built it::

    datasets = DatasetRegistry(db, trace_store)
    version, created = await datasets.from_traces("support-evals", "route=support status=ok since=7d",
                                                  principal=developer)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio

from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import (
    Owner,
    check_add,
    check_change,
    check_read,
    is_admin,
    owner_after_update,
    owner_for_new,
    visible_condition,
    visible_params,
)
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Visibility
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.traces import TraceRecord
from lmdeck.protocol.training import DataCard
from lmdeck.registry.catalog import actor_of, check_name
from lmdeck.registry.corrections import CorrectionKind, CorrectionSources
from lmdeck.registry.datasets import DatasetStore, DatasetVersion, card_not_found, dataset_not_found
from lmdeck.registry.owners import resolve_team
from lmdeck.registry.trace_filter import TraceFilterParser, request_metadata
from lmdeck.tracing.query import TraceQuery
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
    """The dataset row a trace stands for, or None when its bodies were not kept.

    Its metadata also keeps the trace's ``tags`` and the ``metadata`` object the request carried
    (as ``request_metadata``), when there are any: what a split by tag or skill reads.
    """
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
        "tags": list(record.tags) or None,
        "request_metadata": request_metadata(record) or None,
    }
    return DatasetRow(
        input=given,
        expected=_answer(record.response_body),
        metadata={k: v for k, v in metadata.items() if v is not None},
        trace_id=record.id,
    )


class DatasetRegistry:
    """Serving class of ``/api/registry/datasets``; another team's dataset is a 404 unless shared."""

    def __init__(self, db: Database, traces: TraceStore | None = None, parser: TraceFilterParser | None = None) -> None:
        self.db = db
        self.store = DatasetStore(db)
        self.traces: TraceStore = traces or SQLTraceStore(db)
        self.parser = parser or TraceFilterParser.default()
        #: Where corrections come from (evaluation adds ``feedback`` and ``annotations``).
        self.corrections = CorrectionSources()

    # -- ownership (blocking) ------------------------------------------------------------------

    def readable(self, name: str, principal: Principal) -> Owner:
        return check_read(principal, self.store.owner(name), lambda: dataset_not_found(name))

    def _team(self, team: str | None) -> str | None:
        with self.db.engine.connect() as conn:
            return resolve_team(conn, team)

    async def update_owner(
        self,
        name: str,
        principal: Principal,
        *,
        team: str | None = None,
        team_given: bool = False,
        visibility: Visibility | None = None,
    ) -> dict[str, Any]:
        """Share, unshare or (admins) give dataset ``name`` to another team."""

        def write() -> dict[str, Any]:
            what = f"dataset {name!r}"
            current = check_change(principal, self.store.owner(name), what, lambda: dataset_not_found(name))
            resolved = self._team(team) if team_given else None
            changed = owner_after_update(
                principal, current, what, team=resolved, team_given=team_given, visibility=visibility
            )
            if changed != current:
                self.store.set_owner(name, changed)
            return next(e for e in self.store.entries("d.name = :n", {"n": name}))

        return await anyio.to_thread.run_sync(write)

    # -- reading -------------------------------------------------------------------------------

    async def entries(self, principal: Principal) -> list[dict[str, Any]]:
        where = visible_condition(principal, team="d.team_id", visibility="d.visibility")
        return await anyio.to_thread.run_sync(self.store.entries, where, visible_params(principal))

    async def versions(self, name: str, principal: Principal) -> list[DatasetVersion]:
        def read() -> list[DatasetVersion]:
            self.readable(name, principal)
            return self.store.versions(name)

        return await anyio.to_thread.run_sync(read)

    async def version(self, name: str, ref: str, principal: Principal) -> DatasetVersion:
        def read() -> DatasetVersion:
            self.readable(name, principal)
            return self.store.version(name, ref)

        return await anyio.to_thread.run_sync(read)

    async def rows(
        self, name: str, ref: str, offset: int, limit: int, principal: Principal
    ) -> tuple[DatasetVersion, list[DatasetRow]]:
        def read() -> tuple[DatasetVersion, list[DatasetRow]]:
            self.readable(name, principal)
            version = self.store.version(name, ref)
            return version, self.store.rows(name, version.version, offset=offset, limit=limit)

        return await anyio.to_thread.run_sync(read)

    async def card(self, name: str, ref: str, principal: Principal) -> DataCard:
        """The data card of a version the caller may read; 404 when it has none."""

        def read() -> DataCard:
            self.readable(name, principal)
            version = self.store.version(name, ref)
            card = self.store.card(name, version.version)
            if card is None:
                raise card_not_found(name, version.version)
            return card

        return await anyio.to_thread.run_sync(read)

    # -- writing -------------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        rows: list[DatasetRow],
        *,
        principal: Principal,
        description: str | None = None,
        source: dict[str, Any] | None = None,
        team: str | None = None,
        visibility: Visibility | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """A version of uploaded rows; a new dataset belongs to the caller's team (or, for an
        admin, to ``team``)."""
        check_name("dataset", name)
        if len(rows) > MAX_ROWS:
            raise APIError(400, f"a dataset version holds at most {MAX_ROWS} rows", param="rows")

        def write() -> tuple[DatasetVersion, bool]:
            existing = check_add(principal, self.store.owner(name), f"dataset {name!r}")
            if existing is not None and (team is not None or visibility is not None):
                raise _owner_fixed(name)
            owner = owner_for_new(principal, self._team(team), visibility) if existing is None else None
            return self.store.create(
                name,
                rows,
                actor=actor_of(principal),
                description=description,
                source=source or {"kind": "upload"},
                owner=owner,
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

    def _traces_owner(
        self, name: str, principal: Principal, team: str | None, visibility: Visibility | None
    ) -> tuple[Owner | None, Owner | None]:
        """(the owner a new dataset gets, the team whose traces to draw: ``Owner.team_id``; None: any team).

        A dataset belongs to the team whose traces built it: a member draws its own team's
        traces, an existing dataset its owner's; an admin names ``team`` or draws from every
        team (and the traces found decide the owner).
        """
        existing = check_add(principal, self.store.owner(name), f"dataset {name!r}")
        if existing is not None:
            if team is not None or visibility is not None:
                raise _owner_fixed(name)
            return None, existing
        if team is None and is_admin(principal):
            return None, None
        owner = owner_for_new(principal, self._team(team), visibility)
        return owner, owner

    async def from_traces(
        self,
        name: str,
        filter: str,
        *,
        principal: Principal,
        limit: int = 1000,
        description: str | None = None,
        team: str | None = None,
        visibility: Visibility | None = None,
        corrections: CorrectionKind = "none",
        keep_uncorrected: bool = True,
    ) -> tuple[DatasetVersion, bool, int]:
        """(version, created, traces skipped for lack of bodies or of a correction) for the traces
        ``filter`` matches, among the traces of the team the dataset belongs to (see
        :meth:`_traces_owner`); ``corrections`` names where expected outputs come from."""
        check_name("dataset", name)
        if not 1 <= limit <= MAX_ROWS:
            raise APIError(400, f"limit must be between 1 and {MAX_ROWS}", param="limit")
        query, predicates = self.parser.parse(filter, limit=limit)

        def build() -> tuple[DatasetVersion, bool, int]:
            owner, records, rows = self._cut(
                name, filter, query, predicates, principal, limit, team, visibility, corrections, keep_uncorrected
            )
            source: dict[str, Any] = {"kind": "traces", "filter": filter, "traces": len(records)}
            if corrections != "none":
                source["corrections"] = corrections
                source["corrected"] = sum(1 for r in rows if r.metadata.get("source") == "correction")
            version, created = self.store.create(
                name, rows, actor=actor_of(principal), description=description, source=source, owner=owner
            )
            return version, created, len(records) - len(rows)

        return await anyio.to_thread.run_sync(build)

    def _cut(
        self,
        name: str,
        filter: str,
        query: TraceQuery,
        predicates: list[Any],
        principal: Principal,
        limit: int,
        team: str | None,
        visibility: Visibility | None,
        corrections: CorrectionKind,
        keep_uncorrected: bool,
    ) -> tuple[Owner | None, list[TraceRecord], list[DatasetRow]]:
        """(the owner a new dataset gets, None for an existing one; the traces matched, the rows they make) for :meth:`from_traces` (blocking)."""
        owner, drawn = self._traces_owner(name, principal, team, visibility)
        scoped, scope_predicates = query, list(predicates)
        if drawn is not None:
            if query.team_id not in (None, drawn.team_id):
                raise _no_traces(filter, 0)
            scoped = replace(query, team_id=drawn.team_id)
            # TraceQuery(team_id=None) means "any team": the default team's traces are those without one.
            scope_predicates.append(of_team(drawn.team_id))
        records = self._matching(scoped, scope_predicates, limit)
        rows = [row for row in (row_from_trace(r) for r in records) if row is not None]
        if corrections != "none":
            rows = self.corrected(rows, corrections, keep_uncorrected=keep_uncorrected)
        if not rows:
            if corrections != "none" and not keep_uncorrected:
                raise _no_corrections(filter, len(records), corrections)
            raise _no_traces(filter, len(records))
        if drawn is None:
            teams = {r.team_id for r in records if row_from_trace(r) is not None}
            if len(teams) > 1:
                named = ", ".join(sorted(t or "(no team)" for t in teams))
                raise APIError(
                    400,
                    f"the traces {filter!r} matches belong to several teams ({named}); a dataset "
                    "belongs to one team: name it with `team` (or add team=<id> to the filter)",
                    param="team",
                    code="several_teams",
                )
            owner = Owner(teams.pop(), visibility or "team")
        return owner, records, rows

    async def preview(
        self,
        name: str,
        filter: str,
        *,
        principal: Principal,
        limit: int = 1000,
        corrections: CorrectionKind = "none",
        keep_uncorrected: bool = True,
    ) -> dict[str, Any]:
        """What :meth:`from_traces` would make, making nothing: ``{"traces": matched, "rows": n,
        "corrected": n}``; no matching trace (or row) is ``{"traces": 0, ...}``, not an error."""
        check_name("dataset", name)
        query, predicates = self.parser.parse(filter, limit=limit)

        def count() -> dict[str, Any]:
            try:
                _, records, rows = self._cut(
                    name, filter, query, predicates, principal, limit, None, None, corrections, keep_uncorrected
                )
            except APIError as exc:
                if exc.code != "no_traces":
                    raise
                return {"traces": 0, "rows": 0, "corrected": 0, "note": exc.message}
            corrected = sum(1 for r in rows if r.metadata.get("source") == "correction")
            return {"traces": len(records), "rows": len(rows), "corrected": corrected}

        return await anyio.to_thread.run_sync(count)

    def corrected(
        self, rows: list[DatasetRow], kind: CorrectionKind, *, keep_uncorrected: bool = True
    ) -> list[DatasetRow]:
        """``rows`` with ``expected`` replaced by the correction of their trace from source ``kind``
        (``metadata.source``: ``correction`` or ``trace``); without ``keep_uncorrected`` the rows
        no one corrected are left out (blocking)."""
        found = self.corrections.find(kind, [r.trace_id for r in rows if r.trace_id])
        out: list[DatasetRow] = []
        for row in rows:
            if row.trace_id in found:
                metadata = {**row.metadata, "source": "correction", "correction_from": kind}
                out.append(row.model_copy(update={"expected": found[row.trace_id], "metadata": metadata}))
            elif keep_uncorrected:
                out.append(row.model_copy(update={"metadata": {**row.metadata, "source": "trace"}}))
        return out


def of_team(team_id: str | None) -> Callable[[TraceRecord], bool]:
    """A predicate keeping the traces of ``team_id`` (None: the traces without a team)."""
    return lambda record: record.team_id == team_id


def _owner_fixed(name: str) -> APIError:
    return APIError(
        409,
        f"dataset {name!r} exists: its team and visibility change with PATCH /api/registry/datasets/{name}",
        code="already_registered",
    )


def _no_corrections(filter: str, matched: int, kind: str) -> APIError:
    return APIError(
        404,
        f"none of the {matched} traces {filter!r} matches has a correction in {kind}: give corrections "
        "first, or keep the uncorrected rows (keep_uncorrected)",
        code="no_traces",
    )


def _no_traces(filter: str, matched: int) -> APIError:
    return APIError(
        404,
        f"no trace with a stored request matches {filter!r}"
        + (f" ({matched} matched but their bodies were redacted)" if matched else ""),
        code="no_traces",
    )
