"""``lmdeck serve --tls-cert --tls-key``: the official ``openai`` client over HTTPS, and the refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from lmdeck.testing.certs import self_signed_pair
from lmdeck.testing.servers import (
    TEST_ADMIN_KEY,
    TEST_SETTINGS,
    FakeUpstreamProcess,
    GatewayProcess,
    free_port,
    gateway_process,
    openai_target,
)


@pytest.fixture(scope="module")
def tls_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstreamProcess
) -> Iterator[GatewayProcess]:
    cert, key = self_signed_pair(tmp_path_factory.mktemp("certs"))
    config = {**TEST_SETTINGS, "routes": [{"name": "chat", "targets": [openai_target(fake_upstream_server)]}]}
    with gateway_process(config, data_dir=tmp_path_factory.mktemp("tls"), tls=(cert, key)) as gw:
        yield gw


def test_the_openai_client_talks_https_to_the_gateway(tls_gateway: GatewayProcess) -> None:
    request_id = f"tls-{uuid.uuid4().hex}"
    with httpx.Client(verify=tls_gateway.verify) as http:
        client = OpenAI(base_url=tls_gateway.base_url, api_key=tls_gateway.admin_key, http_client=http, max_retries=0)
        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}], extra_headers={"x-request-id": request_id}
        )
    assert tls_gateway.base_url.startswith("https://")
    assert reply.choices[0].message.content
    assert tls_gateway.trace(request_id)["route"] == "chat"
    assert f"lmdeck listening on https://127.0.0.1:{tls_gateway.port}/v1" in tls_gateway.log()


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_gateway: GatewayProcess) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_gateway.url}/health/live", timeout=10.0)


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMDECK_")}
    env.update(LMDECK_DATA_DIR=str(tmp_path / "data"), LMDECK_ADMIN_KEY=TEST_ADMIN_KEY)
    cmd = [sys.executable, "-c", "from lmdeck.cli.main import main; main()", "serve", "--port", str(free_port())]
    return subprocess.run([*cmd, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_a_certificate_without_its_key_is_refused_before_listening(tmp_path: Path) -> None:
    cert, _ = self_signed_pair(tmp_path)
    done = _serve(tmp_path, "--tls-cert", str(cert))
    assert done.returncode == 2
    assert "tls_cert is set but tls_key is not" in done.stderr


def test_an_unreadable_key_is_refused_with_its_path(tmp_path: Path) -> None:
    cert, _ = self_signed_pair(tmp_path)
    missing = tmp_path / "nowhere.key"
    done = _serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(missing))
    assert done.returncode == 2
    assert f"lmdeck cannot start: tls_key {missing} cannot be read" in done.stderr


def test_workers_serve_https_with_the_same_certificate(
    tmp_path: Path, fake_upstream_server: FakeUpstreamProcess
) -> None:
    cert, key = self_signed_pair(tmp_path / "certs")
    config = {**TEST_SETTINGS, "routes": [{"name": "chat", "targets": [openai_target(fake_upstream_server)]}]}
    with gateway_process(config, data_dir=tmp_path / "data", tls=(cert, key), workers=2) as gw:
        for _ in range(4):  # new connections: the kernel hands them to either worker
            with httpx.Client(verify=gw.verify) as http:
                client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key, http_client=http, max_retries=0)
                reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content
        assert f"lmdeck listening on https://127.0.0.1:{gw.port}/v1 (2 workers;" in gw.log()
