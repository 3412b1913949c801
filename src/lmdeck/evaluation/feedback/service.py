"""Serving class of ``/api/feedback``: attach feedback to a trace its caller may see.

A key that is not admin may only give feedback on traces of its own team (a trace of
another team is a 404, as if it did not exist). The trace is found in memory when it
is recent (its store write may still be on its way), else in the trace store, by one
of the ids lmdeck generated for it: its id, the ``x-request-id`` lmdeck answered with,
or lmdeck's W3C trace id. The ids a caller sent (``client_request_id``) are not looked
up: two teams may send the same one. The store query is limited to the caller's team
before it picks a row.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio

from lmdeck.evaluation.export import QualityMetrics
from lmdeck.evaluation.feedback.store import GROUPINGS, FeedbackEntry, FeedbackStore
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Role
from lmdeck.protocol.evaluation import FeedbackRequest
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import TeamScope, TraceQuery
from lmdeck.tracing.store import TraceStore


@dataclass(frozen=True)
class TraceFacts:
    """What feedback copies from its trace: identity, team and the versions that answered."""

    id: str
    team_id: str | None
    key_id: str | None
    route: str | None
    prompt_name: str | None
    prompt_version: int | None
    model: str | None

    @classmethod
    def of(cls, record: TraceRecord) -> TraceFacts:
        return cls(
            record.id,
            record.team_id,
            record.key_id,
            record.route,
            record.prompt_name,
            record.prompt_version,
            record.upstream_model,
        )

    def labels(self) -> tuple[str, str, str, str]:
        return (
            self.route or "none",
            self.prompt_name or "none",
            str(self.prompt_version) if self.prompt_version is not None else "none",
            self.model or "none",
        )


#: Traces kept in memory for feedback that arrives before their store write: a few seconds of traffic.
RECENT_TRACES = 4096

#: The role a key needs to send a ``correction`` (see :func:`check_correction`).
CORRECTION_ROLE: Role = "viewer"
#: Default bound of a correction's size, in bytes of UTF-8 (JSON for a non-text correction).
MAX_CORRECTION_BYTES = 8192


def correction_size(correction: Any) -> int:
    """Bytes a correction takes: UTF-8 of a text, of the compact JSON of anything else."""
    text = (
        correction if isinstance(correction, str) else json.dumps(correction, ensure_ascii=False, separators=(",", ":"))
    )
    return len(text.encode("utf-8"))


def check_correction(request: FeedbackRequest, principal: Principal, max_bytes: int) -> None:
    """Refuse a ``correction`` its sender may not give (403) or that is larger than ``max_bytes`` (400).

    A correction is not a score: a dataset cut from traces takes it as the expected output, so the
    flywheel trains on it. It needs the role that labels data for training, :data:`CORRECTION_ROLE`
    (viewer and up): the same bar as a label with a correction in an annotation queue, whose corrections
    feed the same datasets. An inference key is what an application holds, so whoever uses the
    application could otherwise write training labels; it may still send scores, labels and comments.

    Raises:
        APIError: 403 ``correction_not_allowed`` for an inference key, 400 ``correction_too_large``
            (``param: correction``) past ``max_bytes``.
    """
    if request.correction is None:
        return
    if not principal.at_least(CORRECTION_ROLE):
        raise APIError(
            403,
            f"correction: a correction becomes training data and needs a {CORRECTION_ROLE} key or higher; "
            "an inference key may send value, label and comment",
            param="correction",
            code="correction_not_allowed",
        )
    size = correction_size(request.correction)
    if size > max_bytes:
        raise APIError(
            400,
            f"correction: {size} bytes is over the limit of {max_bytes} (evaluation.feedback_correction_max_bytes)",
            param="correction",
            code="correction_too_large",
        )


class RecentTraces:
    """A trace observer remembering the last ``capacity`` traces by their lmdeck-generated ids.

    It only bridges the moment between a trace's answer and its store write (the store is
    asked otherwise), so it stays small: at most ``3 * capacity`` keys, about 0.8 KB per trace.
    """

    def __init__(self, capacity: int = RECENT_TRACES) -> None:
        self.capacity = capacity
        self._by_key: OrderedDict[str, TraceFacts] = OrderedDict()

    def __len__(self) -> int:
        """How many ids it holds now (at most three per trace)."""
        return len(self._by_key)

    def observe(self, record: TraceRecord) -> None:
        facts = TraceFacts.of(record)
        for key in (record.id, record.request_id, record.trace_id):
            if key:
                self._by_key[key] = facts
                self._by_key.move_to_end(key)
        while len(self._by_key) > self.capacity * 3:
            self._by_key.popitem(last=False)

    def get(self, key: str) -> TraceFacts | None:
        return self._by_key.get(key)


def feedback_scope(principal: Principal) -> TeamScope:
    """An admin gives feedback on any trace; another key on its team's (no team: on traces of no team)."""
    return TeamScope() if principal.role == "admin" else TeamScope(principal.team_id, all_teams=False)


class FeedbackService:
    def __init__(
        self,
        store: FeedbackStore,
        traces: TraceStore | None,
        recent: RecentTraces,
        metrics: QualityMetrics | None = None,
        max_correction_bytes: int = MAX_CORRECTION_BYTES,
    ) -> None:
        self.store = store
        self.max_correction_bytes = max_correction_bytes
        self.traces = traces
        self.recent = recent
        self.metrics = metrics

    def _lookup(self, key: str, scope: TeamScope) -> TraceFacts | None:
        if self.traces is None:
            return None
        record = self.traces.get(key)
        if record is not None:
            return TraceFacts.of(record) if scope.allows(record.team_id) else None
        for query in (TraceQuery(request_id=key, limit=1), TraceQuery(trace_id=key, limit=1)):
            scoped = scope.narrow(query)
            page = self.traces.query(scoped) if scoped is not None else None
            if page is not None and page.records:
                return TraceFacts.of(page.records[0])
        return None

    async def find(self, key: str, principal: Principal) -> TraceFacts:
        scope = feedback_scope(principal)
        facts = self.recent.get(key)
        if facts is None:
            facts = await anyio.to_thread.run_sync(self._lookup, key, scope)
        if facts is None or not scope.allows(facts.team_id):
            raise APIError(
                404,
                f"no trace {key!r}: send the trace id, the x-request-id of the response, or its W3C trace id",
                param="trace_id",
                code="trace_not_found",
            )
        return facts

    async def add(self, request: FeedbackRequest, principal: Principal) -> dict[str, Any]:
        check_correction(request, principal, self.max_correction_bytes)
        facts = await self.find(request.trace_id, principal)
        entry = FeedbackEntry(
            trace_id=facts.id,
            name=request.name,
            value=request.value,
            label=request.label,
            comment=request.comment,
            correction=request.correction,
            source=request.source,
            author=principal.actor,
            route=facts.route,
            prompt_name=facts.prompt_name,
            prompt_version=facts.prompt_version,
            model=facts.model,
            team_id=facts.team_id,
            key_id=principal.key_id,
        )
        stored = await anyio.to_thread.run_sync(self.store.add, entry)
        if self.metrics is not None:
            self.metrics.observe_feedback(facts.labels(), request.name, request.value)
        return stored.to_dict()

    async def entries(self, principal: Principal, trace_id: str | None, limit: int) -> list[dict[str, Any]]:
        if trace_id is not None:
            trace_id = (await self.find(trace_id, principal)).id
        admin = principal.role == "admin"
        entries = await anyio.to_thread.run_sync(
            lambda: self.store.find(trace_id=trace_id, team_id=principal.team_id, all_teams=admin, limit=limit)
        )
        return [e.to_dict() for e in entries]

    async def summary(self, principal: Principal, by: str) -> list[dict[str, Any]]:
        if by not in GROUPINGS:
            raise APIError(400, f"by must be one of {', '.join(GROUPINGS)}, got {by!r}", param="by")
        admin = principal.role == "admin"
        return await anyio.to_thread.run_sync(
            lambda: self.store.summary(by, team_id=principal.team_id, all_teams=admin)
        )
