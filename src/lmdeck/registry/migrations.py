"""The registry's tables.

Versions are immutable rows whose ``spec`` column holds the declared version as
JSON; aliases (models) and labels (prompts) share one pointer table and one move
history. Guardrail attachments of teams and keys applied with ``lmdeck apply``
are in ``registry_guardrail_attachments``. ``registry_revision`` holds a counter bumped by every change, which is
what a gateway polls to learn that another process changed the registry.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations

_TABLES = [
    "CREATE TABLE registry_revision (id INTEGER PRIMARY KEY, revision BIGINT NOT NULL)",
    """CREATE TABLE registry_models (
        name VARCHAR(128) PRIMARY KEY, description TEXT, created_at DOUBLE PRECISION NOT NULL,
        created_by VARCHAR(200))""",
    """CREATE TABLE registry_model_versions (
        name VARCHAR(128) NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL, digest VARCHAR(64) NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, created_by VARCHAR(200), PRIMARY KEY (name, version))""",
    """CREATE TABLE registry_prompts (
        name VARCHAR(128) PRIMARY KEY, description TEXT, created_at DOUBLE PRECISION NOT NULL,
        created_by VARCHAR(200))""",
    """CREATE TABLE registry_prompt_versions (
        name VARCHAR(128) NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL, digest VARCHAR(64) NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, created_by VARCHAR(200), PRIMARY KEY (name, version))""",
    """CREATE TABLE registry_labels (
        kind VARCHAR(16) NOT NULL, name VARCHAR(128) NOT NULL, label VARCHAR(128) NOT NULL,
        version INTEGER NOT NULL, updated_at DOUBLE PRECISION NOT NULL, updated_by VARCHAR(200),
        PRIMARY KEY (kind, name, label))""",
    """CREATE TABLE registry_label_moves (
        id VARCHAR(32) PRIMARY KEY, kind VARCHAR(16) NOT NULL, name VARCHAR(128) NOT NULL,
        label VARCHAR(128) NOT NULL, from_version INTEGER, to_version INTEGER, action VARCHAR(16) NOT NULL,
        actor VARCHAR(200), reason TEXT, at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX registry_label_moves_by_label ON registry_label_moves (kind, name, label, at)",
    """CREATE TABLE registry_datasets (
        name VARCHAR(128) PRIMARY KEY, description TEXT, created_at DOUBLE PRECISION NOT NULL,
        created_by VARCHAR(200))""",
    """CREATE TABLE registry_dataset_versions (
        name VARCHAR(128) NOT NULL, version INTEGER NOT NULL, digest VARCHAR(64) NOT NULL,
        row_count INTEGER NOT NULL, source TEXT, description TEXT, created_at DOUBLE PRECISION NOT NULL,
        created_by VARCHAR(200), PRIMARY KEY (name, version), UNIQUE (name, digest))""",
    """CREATE TABLE registry_dataset_rows (
        name VARCHAR(128) NOT NULL, version INTEGER NOT NULL, idx INTEGER NOT NULL, row_data TEXT NOT NULL,
        trace_id VARCHAR(64), PRIMARY KEY (name, version, idx))""",
    """CREATE TABLE registry_routes (
        name VARCHAR(200) PRIMARY KEY, spec TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        updated_by VARCHAR(200))""",
]


@migrations("0200_registry")
def create_registry(conn: Connection) -> None:
    for statement in _TABLES:
        conn.execute(text(statement))
    conn.execute(text("INSERT INTO registry_revision (id, revision) VALUES (1, 0)"))


@migrations("0201_registry_bundles")
def create_bundles(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE registry_bundles (hash VARCHAR(64) PRIMARY KEY, content TEXT NOT NULL, "
            "first_seen DOUBLE PRECISION NOT NULL)"
        )
    )


#: Tables whose rows belong to a team (see lmdeck.policy.ownership).
OWNED_TABLES = ("registry_models", "registry_prompts", "registry_datasets")


def add_owner_columns(conn: Connection, table: str) -> None:
    """``team_id`` (NULL: the default team) and ``visibility`` (``team`` or ``shared``) on ``table``."""
    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN team_id VARCHAR(64)"))
    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN visibility VARCHAR(16) NOT NULL DEFAULT 'team'"))


def creators_team(table: str) -> str:
    """An UPDATE giving each row of ``table`` the team of the key that created it (``created_by`` is
    ``key:<id>``); rows created by the config file, or by a key without a team, keep NULL."""
    return f"UPDATE {table} SET team_id = (SELECT k.team_id FROM api_keys k WHERE 'key:' || k.id = {table}.created_by)"


@migrations("0210_registry_owners")
def add_registry_owners(conn: Connection) -> None:
    """Models, prompts and datasets get an owning team.

    Existing rows go to the team of the key that created them (the default team for the
    admin key, keys without a team and the config file). A dataset cut from stored traces
    goes to the team those traces belong to; one mixing several teams' traces goes to the
    default team, whose rows only admins and keys without a team read.
    """
    for table in OWNED_TABLES:
        add_owner_columns(conn, table)
        conn.execute(text(creators_team(table)))
    teams: dict[str, set[str | None]] = {}
    rows = conn.execute(
        text(
            "SELECT DISTINCT r.name, t.team_id FROM registry_dataset_rows r JOIN traces t ON t.id = r.trace_id "
            "WHERE r.trace_id IS NOT NULL"
        )
    ).all()
    for name, team in rows:
        teams.setdefault(str(name), set()).add(team)
    for name, found in teams.items():
        team = next(iter(found)) if len(found) == 1 else None
        conn.execute(text("UPDATE registry_datasets SET team_id = :t WHERE name = :n"), {"t": team, "n": name})


@migrations("0220_registry_guardrails")
def create_guardrail_attachments(conn: Connection) -> None:
    """Teams' and keys' guardrail attachments applied with ``lmdeck apply`` (``scope``: ``teams`` or ``keys``;
    ``name``: a team's or key's id or name; ``spec``: the attachment as JSON)."""
    conn.execute(
        text(
            "CREATE TABLE registry_guardrail_attachments (scope VARCHAR(8) NOT NULL, name VARCHAR(200) NOT NULL, "
            "spec TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, updated_by VARCHAR(200), "
            "PRIMARY KEY (scope, name))"
        )
    )


@migrations("0230_registry_dataset_cards")
def add_dataset_cards(conn: Connection) -> None:
    """A dataset version's data card (``lmdeck.protocol.training.DataCard`` as JSON): what the latest
    preparation for fine-tuning made of it; NULL until one is prepared."""
    conn.execute(text("ALTER TABLE registry_dataset_versions ADD COLUMN data_card TEXT"))
