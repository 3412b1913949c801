"""The ``team_id`` and ``visibility`` columns of owned tables, and team names resolved to ids.

Models, prompts, datasets, experiments and online rules carry the same two columns
(migrations ``0210_registry_owners`` and ``0310_evaluation_owners``); what they mean and
who may do what is decided in :mod:`lmdeck.policy.ownership`. Blocking: call off the loop::

    owners = OwnerColumns("registry_prompts")
    with db.engine.begin() as conn:
        owner = owners.get(conn, "support-reply")          # Owner("team_1", "team") or None
        owners.set(conn, "support-reply", Owner("team_1", "shared"))
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from lmdeck.db import Database
from lmdeck.policy.ownership import VISIBILITIES, Owner
from lmdeck.protocol import APIError
from lmdeck.protocol.access import Visibility


def owner_of_row(team_id: Any, visibility: Any) -> Owner:
    shown: Visibility = "shared" if visibility == "shared" else "team"
    assert shown in VISIBILITIES
    return Owner(str(team_id) if team_id is not None else None, shown)


class OwnerColumns:
    """Reads and writes the owner of rows of ``table`` keyed by ``key``."""

    def __init__(self, table: str, key: str = "name") -> None:
        self.table = table
        self.key = key

    def get(self, conn: Connection, value: str) -> Owner | None:
        row = conn.execute(
            text(f"SELECT team_id, visibility FROM {self.table} WHERE {self.key} = :v"), {"v": value}
        ).first()
        return owner_of_row(row[0], row[1]) if row is not None else None

    def set_in(self, db: Database, value: str, owner: Owner) -> None:
        """:meth:`set` in a transaction of its own."""
        with db.engine.begin() as conn:
            self.set(conn, value, owner)

    def set(self, conn: Connection, value: str, owner: Owner) -> None:
        conn.execute(
            text(f"UPDATE {self.table} SET team_id = :t, visibility = :vis WHERE {self.key} = :v"),
            {"t": owner.team_id, "vis": owner.visibility, "v": value},
        )


def resolve_team(conn: Connection, team: str | None) -> str | None:
    """The id of the team named by ``team`` (its id or its name); None stays None (the default team)."""
    if team is None:
        return None
    row = conn.execute(text("SELECT id FROM teams WHERE id = :v OR name = :v"), {"v": team}).first()
    if row is None:
        raise APIError(400, f"no team {team!r}: list them with `lmdeck teams list`", param="team", code="invalid_team")
    return str(row[0])
