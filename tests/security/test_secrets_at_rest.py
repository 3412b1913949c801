"""Data at rest through a real ``lmdeck serve``: the data directory is the owner's alone.

The store (keys' hashes, traces with bodies, encrypted secrets), its WAL, the trace spool,
the master key and the log file must not be readable by other users of the machine.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import openai
import pytest

from lmdeck.testing.servers import (
    TEST_SETTINGS,
    ServerStartError,
    fake_upstream_process,
    gateway_process,
    start_gateway,
)

pytestmark = pytest.mark.integration


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_data_dir_is_0700_and_every_file_in_it_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)  # as an older lmdeck left it
    stray = data_dir / "notes.txt"
    stray.write_text("left by hand")
    os.chmod(stray, 0o644)
    with fake_upstream_process(log_dir=tmp_path) as fake:
        config = {
            **TEST_SETTINGS,
            "log_file": str(data_dir / "lmdeck.log"),
            "routes": [{"name": "chat", "targets": [{"provider": "openai", "model": "m", "base_url": fake.base_url}]}],
        }
        with gateway_process(config, data_dir=data_dir) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=30)
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            put = httpx.put(
                f"{gw.url}/api/secrets/openai-prod", json={"value": "sk-upstream-1"}, headers=gw.headers(), timeout=10
            )
            assert put.status_code == 200, put.text
            client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "again"}],
                extra_headers={"x-request-id": "at-rest-1"},
            )
            gw.trace("at-rest-1")  # stored: the spool and the store have been written
            log_text = gw.log()
            names = {p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")}
            assert {"lmdeck.db", "lmdeck.db-wal", "master.key", "lmdeck.log", "spool", "notes.txt"} <= names, names
            assert any(n.startswith("spool/") and n.endswith(".jsonl") for n in names), names
            assert _mode(data_dir) == 0o700
            for path in data_dir.rglob("*"):
                wanted = 0o700 if path.is_dir() else 0o600
                assert _mode(path) == wanted, f"{path} is {_mode(path):04o}"
    assert "narrowed the permissions" in log_text and "notes.txt" in log_text
    assert "lmdeck" in (data_dir / "lmdeck.log").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing the data dir to another user needs root")
def test_a_data_dir_owned_by_another_user_stops_the_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "lmdeck.db").write_bytes(b"")
    os.chown(data_dir / "lmdeck.db", 65534, 65534)
    with pytest.raises(ServerStartError) as refused:
        start_gateway({**TEST_SETTINGS}, data_dir=data_dir, timeout=30, attempts=1)
    assert "belongs to uid 65534" in str(refused.value) and "chown" in str(refused.value)
