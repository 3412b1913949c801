"""A FAKE server standing in for an attacker: it records every connection and every byte sent to it.

Security tests point lmdeck at it where an attacker would (a model version's ``base_url``)
and then check that it received nothing: no request, no key::

    with RecordingListener() as listener:
        ...  # register a version with base_url=listener.base_url, run an eval through it
        assert listener.connections == 0 and listener.received == b""

It answers nothing: each connection is read until the peer closes it or ``hold`` seconds pass.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class RecordingListener:
    """A TCP listener on loopback recording connections and bytes; a context manager."""

    def __init__(self, host: str = "127.0.0.1", hold: float = 2.0) -> None:
        self.host = host
        self.hold = hold
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._lock = threading.Lock()
        self._data = bytearray()
        self._connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="recording-listener", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a target's ``base_url`` would be set to."""
        return f"{self.url}/v1"

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    @property
    def received(self) -> bytes:
        with self._lock:
            return bytes(self._data)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(self.hold)
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                with self._lock:
                    self._data += chunk

    def __enter__(self) -> RecordingListener:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)
