"""``client.traces`` and ``lmdeck traces`` against a real ``lmdeck serve`` on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app as cli
from lmdeck.sdk import Client, LMDeckError
from lmdeck.testing.servers import GatewayProcess, gateway_process

pytestmark = pytest.mark.integration

REQUEST_IDS = [f"sdk-{n}" for n in range(3)]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process({"default_routes": False}, data_dir=tmp_path_factory.mktemp("gw")) as gw:
        # Requests for a route that does not exist are refused upstream of any provider, and traced.
        for request_id in REQUEST_IDS:
            httpx.post(
                f"{gw.base_url}/chat/completions",
                json={"model": f"missing-{request_id}", "messages": [{"role": "user", "content": "hi"}]},
                headers={**gw.headers(), "x-request-id": request_id},
                timeout=10,
            )
        yield gw


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[Client]:
    with Client(gateway.url, gateway.admin_key) as c:
        deadline = time.monotonic() + 120  # generous: traces are written behind the answers
        while len(c.traces.list(status="error").data) < len(REQUEST_IDS) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield c


def test_list_get_and_iterate(client: Client) -> None:
    page = client.traces.list(client_request_id="sdk-1")
    assert [t.client_request_id for t in page.data] == ["sdk-1"]
    assert page.data[0].request_id.startswith("req_")
    assert [t.id for t in client.traces.list(request_id=page.data[0].request_id).data] == [page.data[0].id]
    trace = client.traces.get(page.data[0].id)
    assert trace.status_code == 404 and trace.error
    assert trace.request_body["model"] == "missing-sdk-1"
    assert trace.request_body["messages"] == [{"role": "user", "content": "hi"}]
    iterated = [t.client_request_id for t in client.traces.iterate(limit=1, status="error")]
    assert iterated == list(reversed(REQUEST_IDS))


def test_errors_come_back_as_lmdeck_errors(client: Client, gateway: GatewayProcess) -> None:
    with pytest.raises(LMDeckError) as info:
        client.traces.get("no-such-trace")
    assert info.value.status == 404 and info.value.code == "trace_not_found"
    with pytest.raises(LMDeckError) as bad:
        client.traces.list(since="someday")
    assert bad.value.status == 400 and bad.value.param == "since"
    with Client(gateway.url, "sk-not-a-key") as stranger, pytest.raises(LMDeckError) as refused:
        stranger.traces.list()
    assert refused.value.status == 401


def test_cli_list_and_show(client: Client, gateway: GatewayProcess) -> None:
    runner = CliRunner()
    target = ["--base-url", gateway.url, "--api-key", gateway.admin_key]
    listed = runner.invoke(cli, ["traces", "list", "--status", "error", "--json", *target])
    assert listed.exit_code == 0, listed.output
    body = json.loads(listed.stdout)
    assert sorted(t["client_request_id"] for t in body["data"]) == REQUEST_IDS

    table = runner.invoke(cli, ["traces", "list", "--status", "404", *target])
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split() == [
        "TIME",
        "ID",
        "ROUTE",
        "MODEL",
        "STATUS",
        "LATENCY",
        "TOKENS",
        "COST",
    ]
    assert len(table.stdout.splitlines()) == 1 + len(REQUEST_IDS)

    first = body["data"][0]["id"]
    shown = runner.invoke(cli, ["traces", "show", first, *target])
    assert shown.exit_code == 0
    assert first in shown.stdout and "request_body:" in shown.stdout

    missing = runner.invoke(cli, ["traces", "show", "nope", *target])
    assert missing.exit_code == 1
    assert "no trace" in missing.output


def test_cli_names_the_fix_when_the_gateway_is_away(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["traces", "list", "--base-url", "http://127.0.0.1:9", "--api-key", "k"])
    assert result.exit_code == 1
    assert "LMDECK_BASE_URL" in result.output
