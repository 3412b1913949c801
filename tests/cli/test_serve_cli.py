"""``lmdeck serve`` on a data directory that another gateway is serving: one clear line, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmdeck.testing.servers import free_port, gateway_process

pytestmark = pytest.mark.integration


def test_a_second_serve_on_the_same_data_dir_exits_with_one_line(tmp_path: Path) -> None:
    with gateway_process({"local": {"enabled": False}}, data_dir=tmp_path) as first:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMDECK_")}
        env.update(LMDECK_DATA_DIR=str(first.data_dir), LMDECK_ADMIN_KEY=first.admin_key)
        cmd = ["-c", "from lmdeck.cli.main import main; main()", "serve", "--config", str(first.config_path)]
        second = subprocess.run(
            [sys.executable, *cmd, "--port", str(free_port())],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"pid {first.proc.pid}" in lines[0] and "LMDECK_DATA_DIR" in lines[0]
        assert first.alive()


def test_serve_logs_the_pipeline_order_once_at_start(tmp_path: Path) -> None:
    with gateway_process({"local": {"enabled": False}}, data_dir=tmp_path) as gw:
        log = gw.log_path.read_text(errors="replace")
    lines = [line for line in log.splitlines() if "pipeline: " in line]
    assert len(lines) == 1, log
    assert (
        " INFO lmdeck.app.assembly: pipeline: stream_usage → authenticate → record → shadow → flags → experiment → "
        "release → prompt → flag-routes" in lines[0]
    )
    assert lines[0].endswith("budget → cache-exact → cache-semantic → cost → applied-routes")
