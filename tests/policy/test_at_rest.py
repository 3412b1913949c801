"""Owner-only data at rest: what ``secure_data_dir`` narrows, creates and refuses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lmdeck.policy import at_rest
from lmdeck.policy.at_rest import secure_data_dir
from lmdeck.settings import ConfigError, Settings, forget_own_secrets


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_creates_the_store_and_log_owner_only_and_narrows_what_is_there(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "spool").mkdir(parents=True)
    os.chmod(data, 0o755)
    os.chmod(data / "spool", 0o775)
    segment = data / "spool" / "0000000001.jsonl"
    segment.write_text("{}\n")
    os.chmod(segment, 0o644)
    settings = Settings.model_validate({"data_dir": str(data), "log_file": str(tmp_path / "logs" / "lmdeck.log")})
    fixed = secure_data_dir(settings)
    assert set(fixed) == {data, data / "spool", segment}
    assert _mode(data) == 0o700 and _mode(data / "spool") == 0o700 and _mode(segment) == 0o600
    assert _mode(data / "lmdeck.db") == 0o600 and (data / "lmdeck.db").stat().st_size == 0
    assert _mode(tmp_path / "logs" / "lmdeck.log") == 0o600
    assert secure_data_dir(settings) == []  # nothing left to narrow


def test_a_mode_that_cannot_be_narrowed_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lmdeck.db").write_bytes(b"")
    os.chmod(tmp_path / "lmdeck.db", 0o644)

    def refuse(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(at_rest.os, "chmod", refuse)
    with pytest.raises(ConfigError, match=r"lmdeck.db is mode 0644 .*chmod 600"):
        secure_data_dir(Settings.model_validate({"data_dir": str(tmp_path)}))


def test_links_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not lmdeck's")
    os.chmod(outside, 0o644)
    data = tmp_path / "data"
    data.mkdir()
    (data / "link").symlink_to(outside)
    secure_data_dir(Settings.model_validate({"data_dir": str(data)}))
    assert _mode(outside) == 0o644


def test_own_secrets_leave_the_environment() -> None:
    env = {"LMDECK_ADMIN_KEY": "k", "LMDECK_MASTER_KEY": "m", "OPENAI_API_KEY": "o"}
    forget_own_secrets(env)
    assert env == {"OPENAI_API_KEY": "o"}
