"""``lmdeck audit verify`` on the store: it passes untouched and names the entry edited or deleted by hand.

The command reads the store named by the config and the environment, as an
operator runs it on the gateway's machine; ``--remote`` (asking a running
gateway) is exercised in test_keys_cli.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.db import Database
from lmdeck.policy.audit import AuditLog


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    db = Database(f"sqlite:///{tmp_path / 'lmdeck.db'}")
    db.migrate()
    audit = AuditLog(db)
    for name in ("a", "b", "c"):
        audit.append("key:key_admin", "key.created", f"key:{name}", after={"name": name, "role": "viewer"})
    db.dispose()
    return tmp_path


def verify(data_dir: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify"], env={"LMDECK_DATA_DIR": str(data_dir), "LMDECK_CONFIG": ""})
    return result.exit_code, result.output


def edit(data_dir: Path, sql: str) -> None:
    with sqlite3.connect(data_dir / "lmdeck.db") as conn:
        conn.execute(sql)


def test_an_untouched_log_verifies(data_dir: Path) -> None:
    code, out = verify(data_dir)
    assert code == 0 and "3 entries, chain intact" in out


def test_an_entry_edited_by_hand_is_named(data_dir: Path) -> None:
    edit(data_dir, 'UPDATE audit_log SET after_state = \'{"name":"b","role":"admin"}\' WHERE seq = 2')
    code, out = verify(data_dir)
    assert code == 1 and "entry 2" in out and "edited" in out


def test_an_entry_deleted_by_hand_is_named(data_dir: Path) -> None:
    edit(data_dir, "DELETE FROM audit_log WHERE seq = 1")
    code, out = verify(data_dir)
    assert code == 1 and "entry 1" in out and "deleted" in out


def test_the_newest_entry_deleted_by_hand_is_named(data_dir: Path) -> None:
    edit(data_dir, "DELETE FROM audit_log WHERE seq = 3")
    code, out = verify(data_dir)
    assert code == 1 and "entry 3" in out


def test_no_store_is_refused_without_creating_one(tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    code, out = verify(empty)
    assert code == 2 and "no lmdeck store" in out and "--data-dir" in out
    assert not (empty / "lmdeck.db").exists()


def test_the_data_dir_option_names_the_store(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["audit", "verify", "--data-dir", str(data_dir)], env={"LMDECK_DATA_DIR": "", "LMDECK_CONFIG": ""}
    )
    assert result.exit_code == 0 and "3 entries, chain intact" in result.output
