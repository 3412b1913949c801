"""The local runner: a worker subprocess in its own process group, watched and cancelled by pid."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmdeck.finetune.runners.base import JobRunner
from lmdeck.finetune.runners.local import LocalRunner
from lmdeck.finetune.training.spec import JobDir
from lmdeck.protocol.training import ProgressEvent
from lmdeck.testing.training_jobs import tiny_job

PATIENCE = 180.0


def wait_for_event(job: JobDir, kind: str) -> ProgressEvent:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = [e for e in job.read_events()[0] if e.kind == kind]
        if found:
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"no {kind} event within {PATIENCE} s: {job.log_file.read_text()[-2000:]}")


def test_a_started_job_runs_to_its_adapter_with_its_output_in_worker_log(tmp_path: Path) -> None:
    runner = LocalRunner()
    assert isinstance(runner, JobRunner) and runner.name == "local"
    job = tiny_job(tmp_path / "job", max_steps=2, save_steps=2)

    handle = runner.start(job.root)

    assert runner.wait(handle, timeout=PATIENCE) == 0
    assert runner.state(handle) == "exited"
    assert job.read_events()[0][-1].kind == "succeeded"
    assert (job.adapter_dir / "adapter_config.json").is_file()
    assert "Traceback" not in job.log_file.read_text() and job.log_file.stat().st_size > 0


def test_cancel_stops_the_worker_even_from_a_runner_that_did_not_start_it(tmp_path: Path) -> None:
    job = tiny_job(tmp_path / "job", max_steps=100_000, save_steps=100_000)
    runner = LocalRunner()
    handle = runner.start(job.root)
    wait_for_event(job, "step")
    restarted = LocalRunner()  # what lmdeck knows after a restart: only the handle

    assert runner.state(handle) == "running" and restarted.state(handle) == "running"
    restarted.cancel(handle)

    assert runner.wait(handle, timeout=PATIENCE) == 3
    assert runner.state(handle) == "exited"
    assert restarted.state(handle) == "lost"
    assert job.read_events()[0][-1].kind == "cancelled"
    runner.cancel(handle)  # gone already: nothing happens


def test_a_pid_that_is_not_a_worker_is_lost_and_not_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        runner = LocalRunner()
        assert runner.state(str(other.pid)) == "lost"
        runner.cancel(str(other.pid))
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_handle_that_is_not_a_pid_is_refused_and_a_missing_spec_named(tmp_path: Path) -> None:
    runner = LocalRunner()
    with pytest.raises(ValueError, match="not a local runner handle"):
        runner.state("raysubmit_123")
    with pytest.raises(FileNotFoundError, match=r"job\.json"):
        runner.start(tmp_path)
