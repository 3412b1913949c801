"""``lmdeck drift report`` against a real ``lmdeck serve`` whose store holds a week of one demo skill's
prompts and then a day of another's (synthetic traces written before the gateway starts)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.db import Database
from lmdeck.testing.servers import TEST_SETTINGS, FakeUpstreamProcess, gateway_process, openai_target
from lmdeck.testing.skill_traffic import skill_traces
from lmdeck.tracing.sql_store import SQLTraceStore

NOW = 1_800_000_000.0
DAY = 86400.0


def test_drift_report_cli_finds_the_new_skill(tmp_path: Path, fake_upstream: FakeUpstreamProcess) -> None:
    data_dir = tmp_path / "gw"
    data_dir.mkdir(mode=0o700)
    db = Database(f"sqlite:///{data_dir / 'lmdeck.db'}")
    db.migrate()
    store = SQLTraceStore(db)
    store.insert(skill_traces("support", {"add": 1.0}, 40, since=NOW - 8 * DAY, until=NOW - DAY, seed=1))
    store.insert(skill_traces("support", {"reverse": 1.0}, 40, since=NOW - DAY, until=NOW, seed=2))
    db.dispose()
    config = {**TEST_SETTINGS, "routes": [{"name": "support", "targets": [openai_target(fake_upstream)]}]}
    with gateway_process(config, data_dir=data_dir) as gw:
        args = ["drift", "report", "--route", "support", "--until", str(NOW), "--fail-on-drift"]
        args += ["--base-url", gw.url, "--api-key", gw.admin_key]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("route support: drift (p = ") for line in lines), result.output
    mmd = next(line.split() for line in lines if line.startswith("input_mmd"))
    assert mmd[1] == "input" and float(mmd[3]) < 0.01 and mmd[5] == "yes", result.output
    assert "(new)" in result.output and "Reverse:" in result.output
