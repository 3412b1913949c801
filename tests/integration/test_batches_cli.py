"""``lmdeck files upload|list`` and ``lmdeck batches list|show|cancel`` against a real ``lmdeck serve``.

The gateway is ``test_batches_gateway``'s (same configuration: the session's factory shares it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target


@pytest.fixture(scope="module")
def gw(gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess) -> GatewayProcess:
    routes = [{"name": "chat", "targets": [openai_target(fake_upstream_server)]}]
    return gateway(routes, batches={"concurrency": 4})


def run(gw: GatewayProcess, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, [*args, "--base-url", gw.url, "--api-key", gw.admin_key])
    assert result.exit_code == code, result.output
    return result.output


def test_upload_list_show_and_cancel_from_the_command_line(gw: GatewayProcess, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "chat", "messages": []},
    }
    rows.write_text(json.dumps(line) + "\n")
    uploaded = json.loads(run(gw, "files", "upload", str(rows), "--json"))
    assert uploaded["purpose"] == "batch" and uploaded["id"] in run(gw, "files", "list")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(line) + "\n{oops\n")
    assert "line 2" in run(gw, "files", "upload", str(bad), code=1)
    created = httpx.post(
        f"{gw.url}/v1/batches",
        json={"input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"},
        headers=gw.headers(),
        timeout=60,
    ).json()
    assert created["id"] in run(gw, "batches", "list")
    deadline = time.monotonic() + 120
    while (shown := json.loads(run(gw, "batches", "show", created["id"], "--json")))["status"] != "completed":
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    assert shown["request_counts"]["total"] == 1
    # One row with no messages: the pipeline refuses it, so it is an error line, and the batch completes.
    assert shown["error_file_id"] and "completed" in run(gw, "batches", "show", created["id"])
    assert "cannot be cancelled" in run(gw, "batches", "cancel", created["id"], code=1)
