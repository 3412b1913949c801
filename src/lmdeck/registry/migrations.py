"""The registry's tables.

Versions are immutable rows whose ``spec`` column holds the declared version as
JSON; aliases (models) and labels (prompts) share one pointer table and one move
history. ``registry_revision`` holds a counter bumped by every change, which is
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
