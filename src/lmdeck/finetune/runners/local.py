"""The ``local`` job runner: the training worker as a subprocess of this lmdeck.

The worker runs as ``sys.executable -m lmdeck.finetune.training.worker JOB_DIR`` in its own process
group (so a cancel reaches it and nothing it starts, and a Ctrl-C of lmdeck does not), its stdout and
stderr appended to the job's ``worker.log``. The handle is the process id::

    runner = LocalRunner()
    handle = runner.start(Path("/data/finetune/jobs/ftjob-1"))     # '41234'
    runner.state(handle)                                            # 'running'
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from lmdeck.finetune.runners.base import WORKER_MODULE, RunnerState
from lmdeck.finetune.runners.registry import RunnerRegistry
from lmdeck.finetune.training.spec import JobDir
from lmdeck.settings import FineTuningSettings


class LocalRunner:
    """Runs training workers as local subprocesses; the handle is the worker's pid (see the module docstring).

    A pid this runner did not start (lmdeck restarted meanwhile) is ``running`` while a process with that
    pid runs the worker module, and ``lost`` otherwise.
    """

    name = "local"

    def __init__(self, settings: FineTuningSettings | None = None) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, job_dir: Path) -> str:
        job = JobDir(job_dir)
        if not job.spec_file.is_file():
            raise FileNotFoundError(f"{job.spec_file} does not exist: write the job's TrainingSpec first")
        with job.log_file.open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(job_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self._children[child.pid] = child
        return str(child.pid)

    def state(self, handle: str) -> RunnerState:
        pid = _pid(handle)
        child = self._children.get(pid)
        if child is not None:
            return "running" if child.poll() is None else "exited"
        return "running" if _runs_worker(pid) else "lost"

    def cancel(self, handle: str) -> None:
        pid = _pid(handle)
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            return
        if child is None and not _runs_worker(pid):
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def wait(self, handle: str, timeout: float | None = None) -> int | None:
        """The exit status of a worker this runner started (None when it is not one of them)."""
        child = self._children.get(_pid(handle))
        return None if child is None else child.wait(timeout)


def _pid(handle: str) -> int:
    if not handle.isdigit():
        raise ValueError(f"{handle!r} is not a local runner handle (a process id)")
    return int(handle)


def _runs_worker(pid: int) -> bool:
    """Whether process ``pid`` exists and runs the training worker (guards against a reused pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True  # no /proc (macOS): the pid exists, take it as ours
    return WORKER_MODULE.encode() in command


def register(registry: RunnerRegistry) -> None:
    registry.add("local", LocalRunner)
