"""The ray runner against a real one-node Ray cluster on loopback: a tiny job trains to its adapter, and a
cancel stops a long one with its ``cancelled`` event.

The cluster is started for this module (``ray start --head --block`` in its own process group, in a
temporary directory, one CPU, dashboard on a free loopback port since the Jobs API lives there) and
stopped by signalling that group; the test is skipped, saying why, when Ray cannot start here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmdeck.finetune.runners.base import JobRunner
from lmdeck.finetune.runners.ray import RayRunner
from lmdeck.finetune.training.spec import JobDir
from lmdeck.settings import FineTuningSettings
from lmdeck.testing.training_jobs import tiny_job

PATIENCE = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def own_processes(marker: str) -> list[int]:
    """Pids of processes whose command line holds ``marker`` (this test's unique Ray temp directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray = Path(sys.executable).with_name("ray")
    if not ray.exists():
        pytest.skip("the ray command is not installed (pip install 'lmdeck[ray]')")
    from ray.job_submission import JobSubmissionClient

    temp = tempfile.mkdtemp(prefix="lmray", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    dashboard = free_port()
    command = [
        str(ray), "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address=127.0.0.1", f"--port={free_port()}", "--num-cpus=1", "--num-gpus=0",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        f"--temp-dir={temp}", "--object-store-memory=100000000",
    ]  # fmt: skip
    log = Path(temp) / "ray-start.log"
    with log.open("wb") as out:
        head = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + PATIENCE
        while True:
            if head.poll() is not None:
                pytest.skip(f"ray could not start here (exit {head.returncode}): {log.read_text()[-1500:]}")
            try:
                JobSubmissionClient(address).list_jobs()
                break
            except Exception:
                if time.monotonic() > deadline:
                    pytest.skip(f"ray's Jobs API did not answer within {PATIENCE} s: {log.read_text()[-1500:]}")
                time.sleep(1.0)
        yield address
    finally:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait()
        for pid in own_processes(temp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp, ignore_errors=True)


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
