"""Tables of access control and cost governance: teams, users, keys, budgets, audit log, secrets.

Keys are stored as SHA-256 hashes next to a short visible prefix; a key may hold
several secrets at once (the new one and, during a rotation's grace period, the
old one). The audit log is hash-chained; ``audit_head`` remembers the last entry
so that deleting the newest row is detected too.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations


@migrations("0100_identities")
def create_identities(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE teams ("
            " id VARCHAR(64) PRIMARY KEY,"
            " name VARCHAR(200) NOT NULL UNIQUE,"
            " created_at FLOAT NOT NULL,"
            " allowed_models TEXT,"
            " allowed_tags TEXT,"
            " rpm INTEGER,"
            " tpm INTEGER,"
            " metadata TEXT)"
        )
    )
    conn.execute(
        text(
            "CREATE TABLE users ("
            " id VARCHAR(64) PRIMARY KEY,"
            " name VARCHAR(200) NOT NULL,"
            " email VARCHAR(320),"
            " team_id VARCHAR(64) REFERENCES teams(id),"
            " created_at FLOAT NOT NULL)"
        )
    )
    conn.execute(
        text(
            "CREATE TABLE api_keys ("
            " id VARCHAR(64) PRIMARY KEY,"
            " name VARCHAR(200) NOT NULL,"
            " role VARCHAR(20) NOT NULL,"
            " team_id VARCHAR(64) REFERENCES teams(id),"
            " user_id VARCHAR(64) REFERENCES users(id),"
            " created_at FLOAT NOT NULL,"
            " created_by VARCHAR(64),"
            " expires_at FLOAT,"
            " revoked_at FLOAT,"
            " allowed_models TEXT,"
            " allowed_tags TEXT,"
            " rpm INTEGER,"
            " tpm INTEGER)"
        )
    )
    conn.execute(
        text(
            "CREATE TABLE api_key_secrets ("
            " hash VARCHAR(64) PRIMARY KEY,"
            " key_id VARCHAR(64) NOT NULL REFERENCES api_keys(id),"
            " prefix VARCHAR(32) NOT NULL,"
            " created_at FLOAT NOT NULL,"
            " expires_at FLOAT)"
        )
    )
    conn.execute(text("CREATE INDEX ix_api_key_secrets_key ON api_key_secrets (key_id)"))
    conn.execute(text("CREATE INDEX ix_api_key_secrets_prefix ON api_key_secrets (prefix)"))


@migrations("0101_budgets")
def create_budgets(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE budgets ("
            " id VARCHAR(64) PRIMARY KEY,"
            " scope VARCHAR(10) NOT NULL,"
            " subject_id VARCHAR(64) NOT NULL,"
            " period VARCHAR(10) NOT NULL,"
            " limit_usd FLOAT NOT NULL,"
            " soft_limit FLOAT NOT NULL,"
            " created_at FLOAT NOT NULL,"
            " updated_at FLOAT NOT NULL,"
            " UNIQUE (scope, subject_id, period))"
        )
    )


@migrations("0102_audit_log")
def create_audit_log(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE audit_log ("
            " seq INTEGER PRIMARY KEY,"
            " at FLOAT NOT NULL,"
            " actor VARCHAR(200) NOT NULL,"
            " action VARCHAR(100) NOT NULL,"
            " target VARCHAR(300) NOT NULL,"
            " before_state TEXT,"
            " after_state TEXT,"
            " prev_hash VARCHAR(64) NOT NULL,"
            " hash VARCHAR(64) NOT NULL)"
        )
    )
    conn.execute(
        text("CREATE TABLE audit_head (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash VARCHAR(64) NOT NULL)")
    )


@migrations("0103_provider_secrets")
def create_provider_secrets(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE provider_secrets ("
            " name VARCHAR(200) PRIMARY KEY,"
            " ciphertext TEXT NOT NULL,"
            " created_at FLOAT NOT NULL,"
            " updated_at FLOAT NOT NULL)"
        )
    )


@migrations("0104_budget_limit_micros")
def budget_limit_in_micros(conn: Connection) -> None:
    """A budget's limit in whole micro-dollars (``limit_micros``), exact to compare, instead of a float."""
    conn.execute(text("ALTER TABLE budgets ADD COLUMN limit_micros BIGINT NOT NULL DEFAULT 0"))
    conn.execute(text("UPDATE budgets SET limit_micros = CAST(ROUND(limit_usd * 1000000) AS BIGINT)"))
    conn.execute(text("ALTER TABLE budgets DROP COLUMN limit_usd"))
