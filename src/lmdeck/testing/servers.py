"""Real servers as subprocesses on loopback: the fake upstream and ``lmdeck serve``.

Used by the integration tests and the benchmarks::

    with fake_upstream_process(latency_ms=5) as fake, TemporaryDirectory() as tmp:
        routes = [{"name": "chat", "targets": [{"provider": "openai", "model": "m", "base_url": fake.base_url}]}]
        with gateway_process({"default_routes": False, "routes": routes}, data_dir=tmp) as gw:
            OpenAI(base_url=gw.base_url, api_key=gw.admin_key).chat.completions.create(...)
        fake.configure(script=[500, 200])
        fake.stats()["counts"]

Each process writes its output to a log file; a start that fails raises with the log's tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

#: The admin key test gateways get unless told otherwise (strong enough for LMDECK_ADMIN_KEY's rule).
TEST_ADMIN_KEY = "sk-lmdeck-test-Qv7mK2xR9pLw4Tn8Zc3Hb6Jd1Fg5Ys0A"

_LISTENING = re.compile(r"fake upstream listening on http://[^:]+:(\d+)/v1")
_ANTHROPIC_LISTENING = re.compile(r"fake anthropic listening on http://[^:]+:(\d+)")


class ServerStartError(RuntimeError):
    """A server process did not become ready; the message carries its log's tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


@dataclass
class FakeUpstreamProcess:
    """A running fake upstream and its control endpoints."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a route target's ``base_url`` (or an OpenAI client) points at."""
        return f"{self.url}/v1"

    def _control(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.url}/_fake/{path}", json=payload, timeout=10.0)
        if response.status_code >= 400:
            raise ValueError(f"fake upstream refused {method} /_fake/{path}: {response.text}")
        return response.json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change the behaviour, e.g. ``configure(script=[500, "429:1"], latency_ms=10)``."""
        return dict(self._control("POST", "config", changes))

    def reset(self) -> None:
        self._control("POST", "reset")

    def stats(self) -> dict[str, Any]:
        return dict(self._control("GET", "stats"))

    def requests(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "requests"))

    def count(self, path: str = "/v1/chat/completions") -> int:
        return int(self.stats()["counts"].get(path, 0))

    def stop(self) -> None:
        _stop(self.proc)


FakeT = TypeVar("FakeT", bound="FakeUpstreamProcess")


def _start_fake(
    kind: type[FakeT],
    name: str,
    cmd: list[str],
    listening: re.Pattern[str],
    host: str,
    log_dir: str | Path | None,
    timeout: float,
) -> FakeT:
    """Run ``cmd``, read its port from the log line ``listening`` matches, wait for ``/_fake/health``."""
    slug = name.replace(" ", "-")
    folder = Path(log_dir or tempfile.mkdtemp(prefix=f"lmdeck-{slug}-"))
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{slug}-{os.getpid()}-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"{name} exited with {proc.returncode}:\n{_tail(log_path)}")
        match = listening.search(log_path.read_text(errors="replace"))
        if match:
            fake = kind(proc, int(match.group(1)), log_path, host)
            try:
                if httpx.get(f"{fake.url}/_fake/health", timeout=1.0).status_code == 200:
                    return fake
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    _stop(proc)
    raise ServerStartError(f"{name} not ready after {timeout}s:\n{_tail(log_path)}")


def start_fake_upstream(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_dir: str | Path | None = None,
    args: Sequence[str] = (),
    timeout: float = 20.0,
    **options: Any,
) -> FakeUpstreamProcess:
    """Start ``python -m lmdeck.testing.fake_upstream`` and wait until it answers.

    ``options`` become flags: ``latency_ms=5`` → ``--latency-ms 5``; a list
    ``script=[500, "429:1"]`` is joined with commas.
    """
    flags: list[str] = []
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        flags += [f"--{name.replace('_', '-')}", str(value)]
    cmd = [sys.executable, "-m", "lmdeck.testing.fake_upstream", "--host", host, "--port", str(port), *flags, *args]
    return _start_fake(FakeUpstreamProcess, "fake upstream", cmd, _LISTENING, host, log_dir, timeout)


@contextlib.contextmanager
def fake_upstream_process(**kwargs: Any) -> Iterator[FakeUpstreamProcess]:
    fake = start_fake_upstream(**kwargs)
    try:
        yield fake
    finally:
        fake.stop()


@dataclass
class GatewayProcess:
    """A running ``lmdeck serve``."""

    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    config_path: Path
    log_path: Path
    admin_key: str
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    #: ``https`` for a gateway started with ``tls=``; then ``verify`` trusts its certificate.
    scheme: str = "http"
    verify: ssl.SSLContext | bool = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url`` for clients of this gateway."""
        return f"{self.url}/v1"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {key or self.admin_key}"}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def trace(self, request_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The stored trace of the request sent with ``x-request-id: request_id`` (traces land asynchronously).

        The caller's id is kept as ``client_request_id``; send a unique one per request. A listing
        that is slow to answer or answers 503 (the analytics pool's workers start with the first
        query, which takes seconds on a loaded machine) is asked again until ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(
                    f"{self.url}/api/traces",
                    params={"client_request_id": request_id},
                    headers=self.headers(),
                    timeout=15.0,
                    verify=self.verify,
                )
            except httpx.TimeoutException:
                response = None
            if response is not None and response.status_code != 503:
                response.raise_for_status()
                found = response.json()["data"]
                if found:
                    return dict(found[0])
            if time.monotonic() > deadline:
                raise TimeoutError(f"no trace for request {request_id!r} after {timeout}s")
            time.sleep(0.05)

    def log(self) -> str:
        return _tail(self.log_path, 200)

    def stop(self) -> None:
        _stop(self.proc, grace=15.0)


def _gateway_env(data_dir: Path, admin_key: str | None, env: Mapping[str, str] | None) -> dict[str, str]:
    # Inherited LMDECK_* variables would leak the caller's setup into the server under test.
    out = {k: v for k, v in os.environ.items() if not k.startswith("LMDECK_")}
    out.update({"LMDECK_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    if admin_key is not None:
        out["LMDECK_ADMIN_KEY"] = admin_key
    out.update(env or {})
    return out


#: Seconds a test server's analytics queries (trace listings, spend, summaries) may take before the 503 the
#: product answers past ``tracing.analytics_timeout_s`` (10 s by default): a test judges answers, not the
#: machine's speed, so a loaded machine must not turn a listing into a 503. A config that sets it keeps its own.
PATIENT_ANALYTICS_S = 120.0


def _patient(config: Mapping[str, Any]) -> dict[str, Any]:
    tracing = config.get("tracing")
    if tracing is not None and not isinstance(tracing, Mapping):
        return dict(config)  # not a mapping: the gateway names the mistake itself
    return {**config, "tracing": {"analytics_timeout_s": PATIENT_ANALYTICS_S, **(tracing or {})}}


def _write_config(config: Mapping[str, Any] | str | Path, data_dir: Path) -> Path:
    if isinstance(config, Path):
        return config
    path = data_dir / "lmdeck.yaml"
    text = config if isinstance(config, str) else yaml.safe_dump(_patient(config), sort_keys=False)
    with _private(path) as fh:
        fh.write(text.encode())
    return path


def _private(path: Path) -> Any:
    """``path`` opened for writing, truncated, owner-only (the gateway narrows its data dir to that anyway)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


#: What ``lmdeck serve`` prints at first start when no admin key is set (see lmdeck.policy.bootstrap).
PRINTED_ADMIN_KEY = re.compile(r"lmdeck admin key \(shown once, store it now\): (\S+)")


def printed_admin_key(log_path: Path) -> str:
    """The admin key a first start printed into its log; ``ServerStartError`` when it printed none."""
    found = PRINTED_ADMIN_KEY.search(log_path.read_text(errors="replace"))
    if found is None:
        raise ServerStartError(f"lmdeck serve printed no admin key (an existing data dir keeps its key): {log_path}")
    return found.group(1)


def start_gateway(
    config: Mapping[str, Any] | str | Path,
    *,
    data_dir: str | Path,
    admin_key: str | None = TEST_ADMIN_KEY,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 60.0,
    attempts: int = 3,
    wait_for: str = "/health/ready",
    tls: tuple[Path, Path] | None = None,
    workers: int | None = None,
) -> GatewayProcess:
    """Start ``lmdeck serve`` with ``config`` (a mapping or YAML text, written under ``data_dir``,
    or the path of an existing file) and wait until ``wait_for`` answers 200 (``/health/live`` to
    return while local models are still loading).

    The admin key is passed as ``LMDECK_ADMIN_KEY``; with ``admin_key=None`` none is, and the
    gateway's ``admin_key`` is the one it printed at first start, as a new user would copy it.
    A port taken between choosing and binding it is retried on another port. ``tls=(cert, key)``
    serves HTTPS with that PEM certificate and key; the returned gateway's ``verify`` trusts the certificate.
    ``workers=N`` starts ``lmdeck serve --workers N`` and waits until all N serve.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config_path = _write_config(config, data_dir)
    full_env = _gateway_env(data_dir, admin_key, env)
    last_error = ""
    scheme, tls_args = "http", []
    verify: ssl.SSLContext | bool = True
    if tls is not None:
        scheme, verify = "https", ssl.create_default_context(cafile=str(tls[0]))
        tls_args = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    for attempt in range(attempts):
        chosen = port if port is not None else free_port(host)
        log_path = data_dir / f"gateway-{chosen}-{attempt}.log"
        log_file = _private(log_path)
        cmd = [
            sys.executable,
            "-c",
            "from lmdeck.cli.main import main; main()",
            "serve",
            "--config",
            str(config_path),
            "--host",
            host,
            "--port",
            str(chosen),
            *tls_args,
            *(["--workers", str(workers)] if workers is not None else []),
        ]
        with log_file as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env, cwd=data_dir
            )
        gw = GatewayProcess(
            proc, chosen, data_dir, config_path, log_path, admin_key or "", host, dict(env or {}), scheme, verify
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                # With workers, the start-up line comes once every worker serves: until then a
                # connection the kernel hands a worker still starting waits for it.
                all_ready = workers is None or "lmdeck listening on" in log_path.read_text(errors="replace")
                if all_ready and httpx.get(f"{gw.url}{wait_for}", timeout=1.0, verify=verify).status_code == 200:
                    if admin_key is None:
                        try:
                            gw.admin_key = printed_admin_key(log_path)
                        except ServerStartError:
                            _stop(proc)
                            raise
                    return gw
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        _stop(proc)
        last_error = _tail(log_path)
        if "address already in use" not in last_error.lower() or port is not None:
            break
    raise ServerStartError(f"lmdeck serve did not become ready (config {config_path}):\n{last_error}")


@contextlib.contextmanager
def gateway_process(config: Mapping[str, Any] | str | Path, **kwargs: Any) -> Iterator[GatewayProcess]:
    gw = start_gateway(config, **kwargs)
    try:
        yield gw
    finally:
        gw.stop()


#: Settings test gateways start from: fast retries, no bundled local routes.
TEST_SETTINGS: dict[str, Any] = {
    "default_routes": False,
    "retry": {"backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2.0},
}


class GatewayFactory:
    """Starts ``lmdeck serve`` processes on demand and stops them all at the end.

    Gateways with the same configuration are shared; ``fresh=True`` gives a private one::

        factory = GatewayFactory(Path("/tmp/gws"))
        gw = factory([{"name": "chat", "targets": [openai_target(fake)]}], breaker={"failure_threshold": 2})
        ...
        factory.stop_all()
    """

    def __init__(self, root: str | Path, base_settings: Mapping[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.base_settings = dict(TEST_SETTINGS if base_settings is None else base_settings)
        self._shared: dict[str, GatewayProcess] = {}
        self._all: list[GatewayProcess] = []

    def __call__(
        self,
        routes: list[dict[str, Any]],
        *,
        fresh: bool = False,
        env: Mapping[str, str] | None = None,
        admin_key: str = TEST_ADMIN_KEY,
        **settings: Any,
    ) -> GatewayProcess:
        config = {**self.base_settings, **settings, "routes": routes}
        key = json.dumps([config, dict(env or {}), admin_key], sort_keys=True, default=str)
        shared = self._shared.get(key)
        if shared is not None and not fresh and shared.alive():
            return shared
        gw = start_gateway(config, data_dir=self.root / f"gw{len(self._all)}", admin_key=admin_key, env=env)
        self._all.append(gw)
        if not fresh:
            self._shared[key] = gw
        return gw

    def stop_all(self) -> None:
        for gw in self._all:
            gw.stop()
        self._all.clear()
        self._shared.clear()


class FakeAnthropicProcess(FakeUpstreamProcess):
    """A running FAKE Anthropic Messages API (:mod:`lmdeck.testing.fake_anthropic`).

    ``configure(script=["error_event:overloaded_error", 200])`` scripts the next answers;
    ``requests()`` returns the bodies received.
    """

    def counted(self) -> list[dict[str, Any]]:
        """The bodies ``/v1/messages/count_tokens`` received."""
        return list(self._control("GET", "counted"))

    @property
    def base_url(self) -> str:
        """What an ``anthropic`` target's ``base_url`` points at."""
        return self.url

    def count(self, path: str = "/v1/messages") -> int:
        return len(self.requests())


def start_fake_anthropic(
    *, host: str = "127.0.0.1", log_dir: str | Path | None = None, api_key: str | None = None, timeout: float = 20.0
) -> FakeAnthropicProcess:
    """Start ``python -m lmdeck.testing.fake_anthropic`` on a free port and wait until it answers."""
    cmd = [sys.executable, "-m", "lmdeck.testing.fake_anthropic", "--host", host, "--port", "0"]
    cmd += ["--api-key", api_key] if api_key else []
    return _start_fake(FakeAnthropicProcess, "fake anthropic", cmd, _ANTHROPIC_LISTENING, host, log_dir, timeout)


def anthropic_target(fake: FakeAnthropicProcess, model: str = "claude-sonnet-4-5", **extra: Any) -> dict[str, Any]:
    """A route target (as config data) that points at the fake Anthropic API."""
    return {"provider": "anthropic", "model": model, "base_url": fake.base_url, **extra}


def openai_target(fake: FakeUpstreamProcess, model: str = "fake-model", **extra: Any) -> dict[str, Any]:
    """A route target (as config data) that points at the fake upstream."""
    return {"provider": "openai", "model": model, "base_url": fake.base_url, **extra}
