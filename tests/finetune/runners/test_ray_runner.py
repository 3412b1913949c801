"""The ray runner against a real one-node Ray cluster on loopback: a tiny job trains to its adapter, and a
cancel stops a long one with its ``cancelled`` event.

The cluster is the session's (``ray_address`` in tests/conftest.py, a :class:`lmdeck.testing.ray_head.RayHead`: one CPU, the Jobs API
on a free loopback port); the test is skipped, saying why, when Ray cannot start here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from lmdeck.finetune.runners.base import JobRunner
from lmdeck.finetune.runners.ray import RayRunner
from lmdeck.finetune.training.spec import JobDir
from lmdeck.settings import FineTuningSettings
from lmdeck.testing.training_jobs import tiny_job

PATIENCE = 240.0


def runner_for(address: str) -> RayRunner:
    return RayRunner(FineTuningSettings(runner="ray", ray_address=address, ray_python=sys.executable))


def wait_until_done(runner: RayRunner, handle: str, job: JobDir) -> None:
    deadline = time.monotonic() + PATIENCE
    while runner.state(handle) == "running":
        if time.monotonic() > deadline:
            pytest.fail(f"the Ray job is still running after {PATIENCE} s: {job.log_file.read_text()[-2000:]}")
        time.sleep(0.5)


def test_a_job_submitted_to_ray_trains_its_adapter_in_the_job_directory(ray_address: str, tmp_path: Path) -> None:
    runner = runner_for(ray_address)
    assert isinstance(runner, JobRunner) and runner.name == "ray"
    job = tiny_job(tmp_path / "job", max_steps=2, save_steps=2)

    handle = runner.start(job.root)
    wait_until_done(runner, handle, job)

    assert runner.state(handle) == "exited"
    events = job.read_events()[0]
    assert events[-1].kind == "succeeded", job.log_file.read_text()[-3000:]
    assert events[-1].step == 2
    assert (job.adapter_dir / "adapter_model.safetensors").is_file()


def test_cancel_stops_a_ray_job_at_a_step(ray_address: str, tmp_path: Path) -> None:
    runner = runner_for(ray_address)
    job = tiny_job(tmp_path / "job", max_steps=100_000, save_steps=100_000)
    handle = runner.start(job.root)
    deadline = time.monotonic() + PATIENCE
    while not any(e.kind == "step" for e in job.read_events()[0]):
        if runner.state(handle) != "running" or time.monotonic() > deadline:
            pytest.fail(f"no step event: {job.log_file.read_text()[-2000:]}")
        time.sleep(0.2)

    runner.cancel(handle)
    wait_until_done(runner, handle, job)

    assert job.read_events()[0][-1].kind == "cancelled"
    assert runner.state("raysubmit_unknown") == "lost"
