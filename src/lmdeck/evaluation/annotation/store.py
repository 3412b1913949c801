"""The annotation queue tables (blocking: call off the event loop).

    store = AnnotationStore(db)
    store.save_queue(spec, Owner("team-a"), actor="key:k1")
    store.add_items("review", [("tr1", "team-a")], source="manual", reason="odd answer")
    item = store.claim("review", reviewer="key:k2", lease_s=900, now=time.time())
    store.label(item.id, item.claim_token, LabelRequest(...), author="key:k2", now=time.time())

A claim is one conditional UPDATE of an item that is pending or whose lease ran out; when two
reviewers race for the same item one UPDATE changes it and the other changes nothing and tries
the next, so an item is held by one reviewer at a time on SQLite and PostgreSQL alike. A label
needs the claim's token and is written with the item's id as its primary key: one label per item.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.exc import IntegrityError

from lmdeck.db import Database
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.annotation import AnnotationQueueSpec, LabelRequest
from lmdeck.registry.sql import dumps, loads, new_id, now

_CLAIM_ATTEMPTS = 20
_ITEM_COLUMNS = (
    "id, queue, trace_id, team_id, source, reason, status, claimed_by, claim_token, lease_until, created_at, "
    "labelled_at"
)


@dataclass(frozen=True)
class StoredQueue:
    spec: AnnotationQueueSpec
    owner: Owner
    watermark: float | None


@dataclass(frozen=True)
class Item:
    """One trace in one queue, with its claim (when held) and its label (once labelled)."""

    id: str
    queue: str
    trace_id: str
    team_id: str | None
    source: str
    reason: str | None
    status: str
    claimed_by: str | None
    claim_token: str | None
    lease_until: float | None
    created_at: float
    labelled_at: float | None
    label: dict[str, Any] | None = None

    def to_dict(self, *, with_token: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id,
            "queue": self.queue,
            "trace_id": self.trace_id,
            "source": self.source,
            "reason": self.reason,
            "status": self.status,
            "claimed_by": self.claimed_by,
            "lease_until": self.lease_until,
            "created_at": self.created_at,
            "labelled_at": self.labelled_at,
            "label": self.label,
        }
        if with_token:
            out["claim"] = self.claim_token
        return out


def _item(row: Any, label: dict[str, Any] | None = None) -> Item:
    (item_id, queue, trace_id, team_id, source, reason, status, claimed_by, token, lease_until, created, done) = row
    return Item(
        id=item_id,
        queue=queue,
        trace_id=trace_id,
        team_id=team_id,
        source=source,
        reason=reason,
        status=status,
        claimed_by=claimed_by,
        claim_token=token,
        lease_until=lease_until,
        created_at=float(created),
        labelled_at=done,
        label=label,
    )


class LabelRefused(Exception):
    """The item cannot be labelled with this claim; ``code`` says why."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class AnnotationStore:
    """Queues, their items and labels."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- queues --------------------------------------------------------------------------------

    def queue(self, name: str) -> StoredQueue | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                text("SELECT spec, team_id, visibility, watermark FROM annotation_queues WHERE name = :n"), {"n": name}
            ).first()
        if row is None:
            return None
        return StoredQueue(AnnotationQueueSpec.model_validate(loads(row[0])), Owner(row[1], row[2]), row[3])

    def queues(self) -> list[StoredQueue]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT spec, team_id, visibility, watermark FROM annotation_queues ORDER BY name")
            ).all()
        return [StoredQueue(AnnotationQueueSpec.model_validate(loads(r[0])), Owner(r[1], r[2]), r[3]) for r in rows]

    def save_queue(self, spec: AnnotationQueueSpec, owner: Owner, actor: str | None, *, watermark: float) -> bool:
        """Create (owned by ``owner``; its rule watches from ``watermark`` on) or replace a queue; True when new."""
        body = dumps(spec.model_dump(mode="json", exclude={"team"}))
        at = now()
        with self.db.engine.begin() as conn:
            found = conn.execute(text("SELECT 1 FROM annotation_queues WHERE name = :n"), {"n": spec.name}).first()
            if found:
                conn.execute(
                    text("UPDATE annotation_queues SET spec = :s, updated_at = :t WHERE name = :n"),
                    {"s": body, "t": at, "n": spec.name},
                )
                return False
            conn.execute(
                text(
                    "INSERT INTO annotation_queues (name, spec, team_id, visibility, watermark, created_at, "
                    "created_by, updated_at) VALUES (:n, :s, :team, :vis, :w, :t, :a, :t)"
                ),
                {"n": spec.name, "s": body, "team": owner.team_id, "vis": "team", "w": watermark, "t": at, "a": actor},
            )
            return True

    def delete_queue(self, name: str) -> bool:
        with self.db.engine.begin() as conn:
            deleted = conn.execute(text("DELETE FROM annotation_queues WHERE name = :n"), {"n": name}).rowcount
            conn.execute(text("DELETE FROM annotation_labels WHERE queue = :n"), {"n": name})
            conn.execute(text("DELETE FROM annotation_items WHERE queue = :n"), {"n": name})
        return bool(deleted)

    def set_watermark(self, conn: Connection, name: str, watermark: float) -> None:
        conn.execute(text("UPDATE annotation_queues SET watermark = :w WHERE name = :n"), {"w": watermark, "n": name})

    def counts(self, name: str) -> dict[str, int]:
        """Items per status: pending, claimed (lease running or not), labelled."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT status, COUNT(*) FROM annotation_items WHERE queue = :q GROUP BY status"), {"q": name}
            ).all()
        found = {str(r[0]): int(r[1]) for r in rows}
        return {status: found.get(status, 0) for status in ("pending", "claimed", "labelled")}

    # -- items ---------------------------------------------------------------------------------

    def add_items(
        self,
        queue: str,
        traces: Sequence[tuple[str, str | None]],
        *,
        source: str,
        reason: str | None = None,
        conn: Connection | None = None,
    ) -> list[str]:
        """Add (trace id, team id) pairs not yet in ``queue``; the trace ids added."""
        if conn is None:
            with self.db.engine.begin() as own:
                return self.add_items(queue, traces, source=source, reason=reason, conn=own)
        added = []
        for trace_id, team_id in dict.fromkeys(traces):
            result = conn.execute(
                text(
                    "INSERT INTO annotation_items (id, queue, trace_id, team_id, source, reason, status, created_at) "
                    "VALUES (:id, :q, :tr, :team, :src, :why, 'pending', :t) ON CONFLICT (queue, trace_id) DO NOTHING"
                ),
                {"id": new_id(), "q": queue, "tr": trace_id, "team": team_id, "src": source, "why": reason, "t": now()},
            )
            if result.rowcount:
                added.append(trace_id)
        return added

    def items(self, queue: str, *, status: str | None = None, limit: int = 100) -> list[Item]:
        where = "queue = :q" + (" AND status = :s" if status else "")
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_ITEM_COLUMNS} FROM annotation_items WHERE {where} ORDER BY created_at, id LIMIT :l"),
                {"q": queue, "s": status, "l": limit},
            ).all()
            labels = self._labels(conn, [r[0] for r in rows])
        return [_item(r, labels.get(r[0])) for r in rows]

    def holding(self, trace_id: str) -> list[tuple[str, str]]:
        """The queues that hold ``trace_id``, with the item's status there: ``[(queue, status), ...]`` by queue."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT queue, status FROM annotation_items WHERE trace_id = :t ORDER BY queue"), {"t": trace_id}
            ).all()
        return [(r[0], r[1]) for r in rows]

    def item(self, queue: str, item_id: str) -> Item | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_ITEM_COLUMNS} FROM annotation_items WHERE queue = :q AND id = :id"),
                {"q": queue, "id": item_id},
            ).first()
            labels = self._labels(conn, [item_id]) if row is not None else {}
        return _item(row, labels.get(item_id)) if row is not None else None

    def _labels(self, conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        rows = conn.execute(
            text(
                "SELECT item_id, score, category, correction, comment, author, created_at FROM annotation_labels "
                "WHERE item_id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        ).all()
        return {
            r[0]: {
                "score": r[1],
                "category": r[2],
                "correction": loads(r[3]),
                "comment": r[4],
                "author": r[5],
                "created_at": r[6],
            }
            for r in rows
        }

    def claim(self, queue: str, *, reviewer: str, lease_s: float, now: float) -> Item | None:
        """Hold the oldest item that is pending or whose lease ran out for ``lease_s`` seconds; None when
        there is none."""
        open_ = "(status = 'pending' OR (status = 'claimed' AND lease_until < :now))"
        for _ in range(_CLAIM_ATTEMPTS):
            token = secrets.token_hex(16)
            with self.db.engine.begin() as conn:
                candidate = conn.execute(
                    text(
                        f"SELECT id FROM annotation_items WHERE queue = :q AND {open_} ORDER BY created_at, id LIMIT 1"
                    ),
                    {"q": queue, "now": now},
                ).scalar()
                if candidate is None:
                    return None
                taken = conn.execute(
                    text(
                        "UPDATE annotation_items SET status = 'claimed', claimed_by = :who, claim_token = :tok, "
                        f"lease_until = :until WHERE id = :id AND {open_}"
                    ),
                    {"who": reviewer, "tok": token, "until": now + lease_s, "id": candidate, "now": now},
                ).rowcount
            if taken:
                return self.item(queue, candidate)
        return None

    def label(self, queue: str, item_id: str, claim: str, request: LabelRequest, *, author: str, now: float) -> Item:
        """Label a claimed item (exactly once); raises :class:`LabelRefused` when the claim does not hold it."""
        try:
            with self.db.engine.begin() as conn:
                changed = conn.execute(
                    text(
                        "UPDATE annotation_items SET status = 'labelled', labelled_at = :t "
                        "WHERE queue = :q AND id = :id AND status = 'claimed' AND claim_token = :tok"
                    ),
                    {"t": now, "q": queue, "id": item_id, "tok": claim},
                ).rowcount
                if not changed:
                    row = conn.execute(
                        text("SELECT status FROM annotation_items WHERE queue = :q AND id = :id"),
                        {"q": queue, "id": item_id},
                    ).first()
                    if row is None:
                        raise LabelRefused(f"no item {item_id!r} in queue {queue!r}", "not_found")
                    if row[0] == "labelled":
                        raise LabelRefused(f"item {item_id!r} is labelled already", "already_labelled")
                    raise LabelRefused(
                        f"item {item_id!r} is not held by this claim (its lease ran out and another reviewer "
                        "claimed it, or it was never claimed): claim the next item",
                        "claim_lost",
                    )
                trace_id = conn.execute(
                    text("SELECT trace_id FROM annotation_items WHERE id = :id"), {"id": item_id}
                ).scalar_one()
                conn.execute(
                    text(
                        "INSERT INTO annotation_labels (item_id, queue, trace_id, score, category, correction, "
                        "comment, author, created_at) VALUES (:id, :q, :tr, :score, :cat, :corr, :comment, :a, :t)"
                    ),
                    {
                        "id": item_id,
                        "q": queue,
                        "tr": trace_id,
                        "score": request.score,
                        "cat": request.category,
                        "corr": dumps(request.correction) if request.correction is not None else None,
                        "comment": request.comment,
                        "a": author,
                        "t": now,
                    },
                )
        except IntegrityError:
            raise LabelRefused(f"item {item_id!r} is labelled already", "already_labelled") from None
        found = self.item(queue, item_id)
        assert found is not None
        return found

    def corrections(self, queue: str) -> list[tuple[str, str, Any, dict[str, Any]]]:
        """(item id, trace id, correction, label fields) of every labelled item with a correction, oldest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT item_id, trace_id, correction, score, category, author FROM annotation_labels "
                    "WHERE queue = :q AND correction IS NOT NULL ORDER BY created_at, item_id"
                ),
                {"q": queue},
            ).all()
        return [(r[0], r[1], loads(r[2]), {"score": r[3], "category": r[4], "author": r[5]}) for r in rows]

    def corrections_of_traces(self, trace_ids: Sequence[str]) -> dict[str, Any]:
        """The newest label correction on each of ``trace_ids`` that has one, in any queue: trace id → correction."""
        found: dict[str, Any] = {}
        ids = list(trace_ids)
        for start in range(0, len(ids), 500):
            sql = text(
                "SELECT trace_id, correction FROM annotation_labels WHERE correction IS NOT NULL "
                "AND trace_id IN :ids ORDER BY created_at, item_id"
            ).bindparams(bindparam("ids", expanding=True))
            with self.db.engine.connect() as conn:
                for trace_id, correction in conn.execute(sql, {"ids": ids[start : start + 500]}):
                    found[str(trace_id)] = loads(correction)
        return found
