"""Who may see a file or a batch: its key's team, or, for a key without a team, that key alone.

The same rule as stored responses (``docs/responses.md``): keys without a team share nothing::

    owns(row_team="t1", row_key="k1", team_id="t1", key_id="k2")   # True: same team
    owns(row_team=None, row_key="k1", team_id=None, key_id="k2")   # False: no team, another key
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, and_


def owns(row_team: str | None, row_key: str | None, team_id: str | None, key_id: str | None) -> bool:
    """Whether the caller (``team_id``, ``key_id``) owns a row made by (``row_team``, ``row_key``)."""
    if team_id is not None:
        return row_team == team_id
    return row_team is None and key_id is not None and row_key == key_id


def owner_clause(table: Table, team_id: str | None, key_id: str | None) -> ColumnElement[bool]:
    """The SQL condition of :func:`owns` over ``table``'s ``team_id`` and ``key_id`` columns."""
    if team_id is not None:
        return table.c.team_id == team_id
    return and_(table.c.team_id.is_(None), table.c.key_id == key_id)
