"""Alert incidents, their history and the notification outbox; blocking (call off the event loop).

An incident is one rule's group from the moment its condition held (``pending``, while ``for_s`` runs)
through ``firing`` (and ``acknowledged``, by a person) to ``resolved``. A notification is written to
``alert_outbox`` in the same transaction as the transition it announces: one per incident and event,
never one per evaluation. History (``alert_events``) keeps every transition with its detail.

    incidents = IncidentStore(db)
    incidents.open_for_rule("chat-errors")          # {group_key: Incident}
    incidents.list(state="firing")
    incidents.acknowledge(incident_id, actor="key_admin", now=time.time())
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from lmdeck.db import Database
from lmdeck.monitoring.store import dumps, loads, new_id

OPEN_STATES = ("pending", "firing", "acknowledged")


@dataclass
class Incident:
    """One stored incident (see the module docs); ``labels`` include ``rule``, ``severity`` and the group."""

    id: str
    rule: str
    group_key: str
    labels: dict[str, Any]
    state: str
    severity: str
    value: float | None
    started_at: float
    fired_at: float | None = None
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    silenced: bool = False
    notified: bool = False
    summary: str = ""
    evidence: dict[str, Any] | None = None

    def to_dict(self, *, evidence: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id,
            "rule": self.rule,
            "state": self.state,
            "severity": self.severity,
            "labels": self.labels,
            "group": loads(self.group_key),
            "value": self.value,
            "started_at": self.started_at,
            "fired_at": self.fired_at,
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": self.resolved_at,
            "silenced": self.silenced,
            "summary": self.summary,
        }
        if evidence:
            out["evidence"] = self.evidence
        return out


@dataclass(frozen=True)
class OutboxItem:
    """One notification to deliver: ``event`` is firing, resolved or test; ``payload`` the channel-free body."""

    id: str
    incident_id: str | None
    channel: str
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    sent_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "incident_id": self.incident_id,
            "channel": self.channel,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "sent_at": self.sent_at,
        }


def _incident(row: Any) -> Incident:
    return Incident(
        id=row["id"],
        rule=row["rule"],
        group_key=row["group_key"],
        labels=loads(row["labels"]),
        state=row["state"],
        severity=row["severity"],
        value=row["value"],
        started_at=float(row["started_at"]),
        fired_at=row["fired_at"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"],
        silenced=bool(row["silenced"]),
        notified=bool(row["notified"]),
        summary=row["summary"] or "",
        evidence=loads(row["evidence"]),
    )


def _outbox(row: Any) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        incident_id=row["incident_id"],
        channel=row["channel"],
        event=row["event"],
        payload=loads(row["payload"]),
        status=row["status"],
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        last_error=row["last_error"],
        created_at=float(row["created_at"]),
        sent_at=row["sent_at"],
    )


_COLUMNS = (
    "id, rule, group_key, labels, state, severity, value, started_at, fired_at, acknowledged_at,"
    " acknowledged_by, resolved_at, silenced, notified, summary, evidence"
)


class IncidentStore:
    """Incidents, history and outbox in the database (see the module docs)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reads ----------------------------------------------------------------------------------

    def open_for_rule(self, rule: str) -> dict[str, Incident]:
        """The rule's open incidents (pending, firing, acknowledged) by group key."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM alert_incidents WHERE rule = :r AND state != 'resolved'"),
                {"r": rule},
            ).mappings()
            return {row["group_key"]: _incident(row) for row in rows}

    def open_rules(self) -> set[str]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT DISTINCT rule FROM alert_incidents WHERE state != 'resolved'"))
            return {str(r[0]) for r in rows}

    def get(self, incident_id: str) -> Incident | None:
        with self.db.engine.connect() as conn:
            row = (
                conn.execute(text(f"SELECT {_COLUMNS} FROM alert_incidents WHERE id = :i"), {"i": incident_id})
                .mappings()
                .first()
            )
            return _incident(row) if row is not None else None

    def find(
        self,
        *,
        state: str | None = None,
        rule: str | None = None,
        since: float | None = None,
        limit: int = 100,
        include_pending: bool = False,
    ) -> list[Incident]:
        """Incidents newest first; ``state`` ``open`` means firing or acknowledged."""
        conditions, params = ["1 = 1"], {"limit": limit}
        if state == "open":
            conditions.append("state IN ('firing', 'acknowledged')")
        elif state is not None:
            conditions.append("state = :state")
            params["state"] = state  # type: ignore[assignment]
        elif not include_pending:
            conditions.append("state != 'pending'")
        if rule is not None:
            conditions.append("rule = :rule")
            params["rule"] = rule  # type: ignore[assignment]
        if since is not None:
            conditions.append("started_at >= :since")
            params["since"] = since  # type: ignore[assignment]
        where = " AND ".join(conditions)
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM alert_incidents WHERE {where} ORDER BY started_at DESC, id LIMIT :limit"),
                params,
            ).mappings()
            return [_incident(row) for row in rows]

    def events(self, incident_id: str) -> list[dict[str, Any]]:
        """The incident's history, oldest first: ``{"at", "event", "detail"}``."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT at, event, detail FROM alert_events WHERE incident_id = :i ORDER BY seq"),
                {"i": incident_id},
            ).all()
        return [{"at": float(at), "event": event, "detail": loads(detail)} for at, event, detail in rows]

    # -- writes (each in the caller's transaction) -----------------------------------------------

    @staticmethod
    def insert(conn: Connection, incident: Incident) -> None:
        conn.execute(
            text(
                f"INSERT INTO alert_incidents ({_COLUMNS}) VALUES (:id, :rule, :group_key, :labels, :state,"
                " :severity, :value, :started_at, :fired_at, :acknowledged_at, :acknowledged_by, :resolved_at,"
                " :silenced, :notified, :summary, :evidence)"
            ),
            _params(incident),
        )

    @staticmethod
    def update(conn: Connection, incident: Incident) -> None:
        conn.execute(
            text(
                "UPDATE alert_incidents SET labels = :labels, state = :state, severity = :severity, value = :value,"
                " fired_at = :fired_at, acknowledged_at = :acknowledged_at, acknowledged_by = :acknowledged_by,"
                " resolved_at = :resolved_at, silenced = :silenced, notified = :notified, summary = :summary,"
                " evidence = :evidence WHERE id = :id"
            ),
            _params(incident),
        )

    @staticmethod
    def delete(conn: Connection, incident_id: str) -> None:
        conn.execute(text("DELETE FROM alert_events WHERE incident_id = :i"), {"i": incident_id})
        conn.execute(text("DELETE FROM alert_incidents WHERE id = :i"), {"i": incident_id})

    @staticmethod
    def event(conn: Connection, incident_id: str, at: float, event: str, detail: Any = None) -> None:
        conn.execute(
            text("INSERT INTO alert_events (incident_id, at, event, detail) VALUES (:i, :a, :e, :d)"),
            {"i": incident_id, "a": at, "e": event, "d": dumps(detail) if detail is not None else None},
        )

    @staticmethod
    def enqueue(
        conn: Connection, incident_id: str | None, channels: Iterable[str], event: str, payload: Any, now: float
    ) -> list[str]:
        """Outbox rows for ``channels``, due now; their ids."""
        ids = []
        for channel in channels:
            item_id = new_id("ntf")
            conn.execute(
                text(
                    "INSERT INTO alert_outbox (id, incident_id, channel, event, payload, status, attempts,"
                    " next_attempt_at, created_at) VALUES (:i, :inc, :c, :e, :p, 'pending', 0, :t, :t)"
                ),
                {"i": item_id, "inc": incident_id, "c": channel, "e": event, "p": dumps(payload), "t": now},
            )
            ids.append(item_id)
        return ids

    def acknowledge(self, incident_id: str, actor: str, now: float, comment: str = "") -> Incident | None:
        """Mark a firing incident acknowledged (it still resolves and notifies the resolution); None when
        there is no such incident. ``ValueError`` when it is not firing."""
        with self.db.engine.begin() as conn:
            row = (
                conn.execute(text(f"SELECT {_COLUMNS} FROM alert_incidents WHERE id = :i"), {"i": incident_id})
                .mappings()
                .first()
            )
            if row is None:
                return None
            incident = _incident(row)
            if incident.state != "firing":
                raise ValueError(f"alert {incident_id} is {incident.state}: only a firing alert is acknowledged")
            incident.state, incident.acknowledged_at, incident.acknowledged_by = "acknowledged", now, actor
            self.update(conn, incident)
            self.event(conn, incident_id, now, "acknowledged", {"by": actor, "comment": comment})
        return incident

    # -- the outbox -------------------------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[OutboxItem]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT * FROM alert_outbox WHERE status = 'pending' AND next_attempt_at <= :t"
                    " ORDER BY created_at, id LIMIT :n"
                ),
                {"t": now, "n": limit},
            ).mappings()
            return [_outbox(row) for row in rows]

    def outbox(self, *, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Notifications newest first; ``status`` ``dead`` is the dead-letter log."""
        where, params = ("WHERE status = :s", {"s": status}) if status else ("", {})
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT * FROM alert_outbox {where} ORDER BY created_at DESC, id LIMIT :n"),
                {**params, "n": limit},
            ).mappings()
            return [_outbox(row) for row in rows]

    def mark_sent(self, item_id: str, now: float) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                text("UPDATE alert_outbox SET status = 'sent', attempts = attempts + 1, sent_at = :t WHERE id = :i"),
                {"i": item_id, "t": now},
            )

    def mark_failed(self, item_id: str, error: str, next_attempt_at: float | None) -> None:
        """One failed attempt; ``next_attempt_at`` None moves the item to the dead-letter log."""
        status = "pending" if next_attempt_at is not None else "dead"
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE alert_outbox SET status = :s, attempts = attempts + 1, last_error = :e,"
                    " next_attempt_at = COALESCE(:n, next_attempt_at) WHERE id = :i"
                ),
                {"i": item_id, "s": status, "e": error[:2000], "n": next_attempt_at},
            )

    def retry_dead(self, item_ids: Sequence[str], now: float) -> int:
        """Put dead-lettered notifications back in the queue; how many were."""
        with self.db.engine.begin() as conn:
            count = 0
            for item_id in item_ids:
                count += conn.execute(
                    text(
                        "UPDATE alert_outbox SET status = 'pending', attempts = 0, next_attempt_at = :t"
                        " WHERE id = :i AND status = 'dead'"
                    ),
                    {"i": item_id, "t": now},
                ).rowcount
            return count


def _params(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "rule": incident.rule,
        "group_key": incident.group_key,
        "labels": dumps(incident.labels),
        "state": incident.state,
        "severity": incident.severity,
        "value": incident.value,
        "started_at": incident.started_at,
        "fired_at": incident.fired_at,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": incident.acknowledged_by,
        "resolved_at": incident.resolved_at,
        "silenced": int(incident.silenced),
        "notified": int(incident.notified),
        "summary": incident.summary,
        "evidence": dumps(incident.evidence) if incident.evidence is not None else None,
    }
