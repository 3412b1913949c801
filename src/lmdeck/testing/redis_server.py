"""A real ``redis-server`` (Debian's package) on loopback, for tests: started, killed and restarted at will.

    redis = start_redis()            # on a free port, no persistence, in a temporary directory
    settings = {"redis": {"url": redis.url}}
    redis.kill()                     # SIGKILL, as a crash would
    redis.start()                    # again, on the same port (empty: nothing was saved)
    redis.stop()                     # SIGTERM and wait; removes the directory

:func:`redis_available` says whether ``redis-server`` is on PATH (``make test`` installs it).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from lmdeck.db.redis_link import RedisLink
from lmdeck.settings import Settings
from lmdeck.testing.servers import free_port


def redis_available() -> bool:
    """True when a ``redis-server`` binary is on PATH."""
    return shutil.which("redis-server") is not None


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 60.0) -> None:
        """Start (or start again) on the same port; returns once it accepts connections."""
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.directory}/redis.log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout:.0f} s")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL and wait: the server is gone at once, with everything it held."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis() -> RedisServer:
    """A fresh ``redis-server`` on a free loopback port (see the module docstring)."""
    server = RedisServer(free_port(), Path(tempfile.mkdtemp(prefix="lmdeck-redis.")))
    server.start()
    return server


def redis_link(url: str, *, registry: CollectorRegistry | None = None, **redis: object) -> RedisLink:
    """A :class:`~lmdeck.db.redis_link.RedisLink` to ``url`` with the ``redis.*`` settings ``redis``; its metrics
    on ``registry`` or a fresh one. The ``timeout`` is 30 s unless given: a busy machine must not read as Redis
    being down (a test of a silent Redis passes its own)."""
    link = RedisLink.from_settings(
        Settings.model_validate({"redis": {"url": url, "timeout": 30, **redis}}),
        registry=registry or CollectorRegistry(),
    )
    assert link is not None
    return link
