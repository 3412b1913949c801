"""Serving class of ``/api/annotation-queues``: queues owned by a team, items claimed and labelled by the
team's reviewers (viewer role and up), every change in the audit log, corrections exported as a
dataset version.

    service = AnnotationService(db, audit, datasets)
    await service.save(spec, developer)                      # create or replace a queue
    await service.add("review", ["tr1"], reviewer, reason="looks wrong")
    item = await service.claim("review", reviewer)           # {"id", "claim", "trace": {...}, ...} or None
    await service.label("review", item["id"], LabelRequest(claim=item["claim"], score=0.2), reviewer)
    version = await service.export("review", developer)      # the corrections as dataset rows

A queue is always private to its team: another team's caller gets a 404 for it and its traces.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from lmdeck.db import Database
from lmdeck.evaluation.annotation.store import AnnotationStore, Item, LabelRefused, StoredQueue
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.audit import AuditLog
from lmdeck.policy.ownership import check_add, check_change, check_read, is_admin, owner_for_new
from lmdeck.protocol import APIError
from lmdeck.protocol.annotation import AnnotationQueueSpec, LabelRequest
from lmdeck.protocol.registry import DatasetRow
from lmdeck.registry.dataset_registry import DatasetRegistry, row_from_trace
from lmdeck.registry.owners import resolve_team
from lmdeck.tracing.sql_store import SQLTraceStore

_STATUS = {"not_found": 404, "already_labelled": 409, "claim_lost": 409}


def _missing(name: str) -> APIError:
    return APIError(404, f"no annotation queue {name!r}", code="not_found", param="name")


class AnnotationService:
    """Queues, items, claims, labels and exports (see the module docs)."""

    def __init__(self, db: Database, audit: AuditLog, datasets: DatasetRegistry | None = None) -> None:
        self.db = db
        self.audit = audit
        self.store = AnnotationStore(db)
        self.traces = SQLTraceStore(db)
        self.datasets = datasets

    # -- blocking helpers ----------------------------------------------------------------------

    def _readable(self, name: str, principal: Principal) -> StoredQueue:
        queue = self.store.queue(name)
        check_read(principal, queue.owner if queue else None, lambda: _missing(name))
        assert queue is not None
        return queue

    def _view(self, queue: StoredQueue) -> dict[str, Any]:
        return {
            **queue.spec.model_dump(mode="json", exclude={"team"}),
            "team_id": queue.owner.team_id,
            "counts": self.store.counts(queue.spec.name),
        }

    def _trace_view(self, item: Item) -> dict[str, Any] | None:
        record = self.traces.get(item.trace_id)
        if record is None:
            return None
        row = row_from_trace(record)
        return {
            "id": record.id,
            "route": record.route,
            "model": record.upstream_model,
            "created_at": record.created_at,
            "status_code": record.status_code,
            "input": row.input if row is not None else None,
            "output": row.expected if row is not None else None,
        }

    # -- queues --------------------------------------------------------------------------------

    def _listed(self, principal: Principal) -> list[dict[str, Any]]:
        return [
            self._view(q) for q in self.store.queues() if is_admin(principal) or q.owner.team_id == principal.team_id
        ]

    async def queues(self, principal: Principal) -> list[dict[str, Any]]:
        return await anyio.to_thread.run_sync(self._listed, principal)

    async def get(self, name: str, principal: Principal) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(lambda: self._view(self._readable(name, principal)))

    async def save(self, spec: AnnotationQueueSpec, principal: Principal) -> dict[str, Any]:
        """Create a queue for the caller's team (an admin may name ``spec.team``) or replace one it may change."""

        def write() -> dict[str, Any]:
            what = f"annotation queue {spec.name!r}"
            current = self.store.queue(spec.name)
            existing = check_add(principal, current.owner if current else None, what)
            if existing is not None:
                with self.db.engine.connect() as conn:
                    if spec.team is not None and resolve_team(conn, spec.team) != existing.team_id:
                        raise APIError(409, f"{what} belongs to {existing.team_name}", code="already_registered")
                owner = existing
            else:
                with self.db.engine.connect() as conn:
                    owner = owner_for_new(principal, resolve_team(conn, spec.team), "team")
            created = self.store.save_queue(spec, owner, principal.actor, watermark=time.time())
            before = current.spec.model_dump(mode="json", exclude={"team"}) if current else None
            after = spec.model_dump(mode="json", exclude={"team"})
            action = "annotation.queue_created" if created else "annotation.queue_updated"
            self.audit.append(principal.actor, action, f"annotation-queue:{spec.name}", before=before, after=after)
            stored = self.store.queue(spec.name)
            assert stored is not None
            return {**self._view(stored), "created": created}

        return await anyio.to_thread.run_sync(write)

    async def delete(self, name: str, principal: Principal) -> None:
        def write() -> None:
            queue = self.store.queue(name)
            check_change(
                principal, queue.owner if queue else None, f"annotation queue {name!r}", lambda: _missing(name)
            )
            self.store.delete_queue(name)
            self.audit.append(principal.actor, "annotation.queue_deleted", f"annotation-queue:{name}")

        await anyio.to_thread.run_sync(write)

    # -- items ---------------------------------------------------------------------------------

    async def add(self, name: str, trace_ids: list[str], principal: Principal, reason: str | None) -> dict[str, Any]:
        """Send traces of the queue's team by hand; a trace of another team (or none) is a 404 for all."""

        def write() -> dict[str, Any]:
            queue = self._readable(name, principal)
            found = {tid: self.traces.get(tid) for tid in dict.fromkeys(trace_ids)}
            missing = [tid for tid, r in found.items() if r is None or r.team_id != queue.owner.team_id]
            if missing:
                raise APIError(
                    404,
                    f"no stored trace of the queue's team: {', '.join(missing[:5])}"
                    + (" (a trace lands a moment after its request: retry)" if len(missing) == 1 else ""),
                    code="trace_not_found",
                    param="trace_ids",
                )
            added = self.store.add_items(
                name, [(tid, queue.owner.team_id) for tid in found], source="manual", reason=reason
            )
            if added:
                self.audit.append(
                    principal.actor,
                    "annotation.items_added",
                    f"annotation-queue:{name}",
                    after={"trace_ids": added, "reason": reason},
                )
            return {"added": added, "already_queued": [tid for tid in found if tid not in added]}

        return await anyio.to_thread.run_sync(write)

    async def placements(self, trace_id: str, principal: Principal) -> list[dict[str, Any]]:
        """The queues the caller may read that hold ``trace_id``: ``[{"queue", "status"}, ...]``."""

        def read() -> list[dict[str, Any]]:
            readable = {q["name"] for q in self._listed(principal)}
            return [{"queue": q, "status": s} for q, s in self.store.holding(trace_id) if q in readable]

        return await anyio.to_thread.run_sync(read)

    async def items(self, name: str, principal: Principal, status: str | None, limit: int) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            self._readable(name, principal)
            return [i.to_dict() for i in self.store.items(name, status=status, limit=limit)]

        return await anyio.to_thread.run_sync(read)

    async def claim(self, name: str, principal: Principal, lease_s: float | None) -> dict[str, Any] | None:
        """The next item, held by the caller for the lease, with its trace's input and output; None when empty."""

        def write() -> dict[str, Any] | None:
            queue = self._readable(name, principal)
            item = self.store.claim(
                name, reviewer=principal.actor, lease_s=lease_s or queue.spec.lease_s, now=time.time()
            )
            if item is None:
                return None
            return {**item.to_dict(with_token=True), "trace": self._trace_view(item)}

        return await anyio.to_thread.run_sync(write)

    async def label(self, name: str, item_id: str, request: LabelRequest, principal: Principal) -> dict[str, Any]:
        """Label an item the caller's claim holds (once); 409 when labelled already or the claim was lost."""

        def write() -> dict[str, Any]:
            queue = self._readable(name, principal)
            categories = queue.spec.categories
            if request.category is not None and categories and request.category not in categories:
                raise APIError(
                    400,
                    f"category {request.category!r} is not one of queue {name!r}'s: {', '.join(categories)}",
                    param="category",
                    code="invalid_category",
                )
            try:
                item = self.store.label(name, item_id, request.claim, request, author=principal.actor, now=time.time())
            except LabelRefused as exc:
                raise APIError(_STATUS[exc.code], str(exc), code=exc.code, param="claim") from None
            self.audit.append(
                principal.actor,
                "annotation.labelled",
                f"annotation-item:{name}/{item_id}",
                after={"trace_id": item.trace_id, **(item.label or {})},
            )
            return item.to_dict()

        return await anyio.to_thread.run_sync(write)

    # -- export --------------------------------------------------------------------------------

    async def export(
        self, name: str, principal: Principal, dataset: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """Every correction of the queue as a dataset version (input from the trace, expected the correction);
        the version's source names the queue and its items."""
        if self.datasets is None:
            raise APIError(503, "this gateway has no dataset registry", code="no_registry")
        datasets = self.datasets

        def collect() -> tuple[StoredQueue, list[DatasetRow], list[str], list[str]]:
            queue = self.store.queue(name)
            check_change(
                principal, queue.owner if queue else None, f"annotation queue {name!r}", lambda: _missing(name)
            )
            assert queue is not None
            rows, items, skipped = [], [], []
            for item_id, trace_id, correction, label in self.store.corrections(name):
                record = self.traces.get(trace_id)
                row = row_from_trace(record) if record is not None else None
                if row is None:
                    skipped.append(item_id)  # the trace or its bodies are gone (retention)
                    continue
                metadata = {**row.metadata, "annotation_queue": name, "annotation_item": item_id, **label}
                rows.append(DatasetRow(input=row.input, expected=correction, metadata=metadata, trace_id=trace_id))
                items.append(item_id)
            return queue, rows, items, skipped

        queue, rows, items, skipped = await anyio.to_thread.run_sync(collect)
        if not rows:
            raise APIError(
                404,
                f"annotation queue {name!r} has no labelled item with a correction whose trace still has its bodies",
                code="no_corrections",
            )
        target = dataset or queue.spec.target_dataset()
        version, created = await datasets.create(
            target,
            rows,
            principal=principal,
            description=description or f"corrections from annotation queue {name}",
            source={"kind": "annotation_queue", "queue": name, "items": items},
            team=queue.owner.team_id if is_admin(principal) and principal.team_id != queue.owner.team_id else None,
        )
        await self.audit.record(
            principal.actor,
            "annotation.exported",
            f"annotation-queue:{name}",
            after={"dataset": target, "version": version.version, "items": items, "skipped": skipped},
        )
        return {**version.to_dict(), "created": created, "items": items, "skipped": skipped}
