"""SQL fragments shared by the evaluation tables."""

from __future__ import annotations


def team_condition(team_id: str | None, column: str = "team_id") -> str:
    """Rows of one team; a caller without a team sees the rows without one (NULL never equals NULL)."""
    return f"{column} IS NULL" if team_id is None else f"{column} = :team"
