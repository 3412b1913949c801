"""``lmdeck serve`` on a data directory that another gateway is serving: one clear line, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lmdeck.testing.servers import GatewayProcess, free_port, gateway_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One ``lmdeck serve`` for the module: both tests only read what it logged and which data dir it holds."""
    with gateway_process({"local": {"enabled": False}}, data_dir=tmp_path_factory.mktemp("serve")) as gw:
        yield gw


def test_a_second_serve_on_the_same_data_dir_exits_with_one_line(first: GatewayProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMDECK_")}
    env.update(LMDECK_DATA_DIR=str(first.data_dir), LMDECK_ADMIN_KEY=first.admin_key)
    cmd = ["-c", "from lmdeck.cli.main import main; main()", "serve", "--config", str(first.config_path)]
    second = subprocess.run(
        [sys.executable, *cmd, "--port", str(free_port())],
        env=env,
        cwd=first.data_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"pid {first.proc.pid}" in lines[0] and "LMDECK_DATA_DIR" in lines[0]
    assert first.alive()


def test_serve_logs_the_pipeline_order_once_at_start(first: GatewayProcess) -> None:
    log = first.log_path.read_text(errors="replace")  # the gateway answers ready only after its start is logged
    lines = [line for line in log.splitlines() if "pipeline: " in line]
    assert len(lines) == 1, log
    assert (
        " INFO lmdeck.app.assembly: pipeline: stream_usage → authenticate → record → shadow → flags → experiment → "
        "release → prompt → flag-routes" in lines[0]
    )
    assert lines[0].endswith("budget → cache-exact → cache-semantic → cost → applied-routes")
