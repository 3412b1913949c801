"""A real one-node Ray cluster on loopback, for tests: ``ray start --head --block`` and its Jobs API.

The head runs in its own process group, in a short temporary directory, with one CPU and the dashboard
(where the Jobs API lives) on a free loopback port; stopping it signals that group and kills whatever
still runs with that directory on its command line::

    head = RayHead.start()             # RayUnavailable (saying why) when Ray cannot start here
    JobSubmissionClient(head.address)  # http://127.0.0.1:<port>
    head.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmdeck.testing.servers import free_port


class RayUnavailable(Exception):
    """Ray is not installed, or its head did not start or answer in time (the message says which)."""


def own_processes(marker: str) -> list[int]:
    """Pids of processes whose command line holds ``marker`` (a head's unique temp directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class RayHead:
    """One ``ray start --head`` on 127.0.0.1; ``address`` is its Jobs API (``http://127.0.0.1:PORT``)."""

    def __init__(self, process: subprocess.Popen[bytes], address: str, temp: str) -> None:
        self.process = process
        self.address = address
        self.temp = temp

    @classmethod
    def start(cls, patience: float = 240.0) -> RayHead:
        """Start a head and wait (up to ``patience`` seconds) until its Jobs API answers."""
        ray = Path(sys.executable).with_name("ray")
        if not ray.exists():
            raise RayUnavailable("the ray command is not installed (pip install 'lmdeck[ray]')")
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
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        head = cls(process, f"http://127.0.0.1:{dashboard}", temp)
        deadline = time.monotonic() + patience
        while True:
            if process.poll() is not None:
                why = f"ray could not start here (exit {process.returncode}): {log.read_text()[-1500:]}"
                head.stop()
                raise RayUnavailable(why)
            try:
                JobSubmissionClient(head.address).list_jobs()
                return head
            except Exception:
                if time.monotonic() > deadline:
                    why = f"ray's Jobs API did not answer within {patience} s: {log.read_text()[-1500:]}"
                    head.stop()
                    raise RayUnavailable(why) from None
                time.sleep(1.0)

    def stop(self) -> None:
        """SIGTERM the head's group (SIGKILL after 60 s), kill what is left of it, remove its directory."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in own_processes(self.temp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)
