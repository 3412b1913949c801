"""The client base and ``client.traces`` against a transport that records what is sent."""

from __future__ import annotations

import httpx
import pytest

from lmdeck.sdk import Client, LMDeckError
from lmdeck.sdk.traces import Traces

TRACE = {"id": "t1", "trace_id": "a" * 32, "route": "demo", "status_code": 200, "object": "trace"}


def client_for(handler: httpx.MockTransport) -> Client:
    return Client("http://lmdeck.test", api_key="sk-test", transport=handler)


def test_list_sends_only_given_filters_and_reads_the_page() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": [TRACE], "next_cursor": "c1", "has_more": True})

    with client_for(httpx.MockTransport(handle)) as client:
        page = client.traces.list(route="demo", errors=True, limit=5)
    assert page.has_more and page.next_cursor == "c1"
    assert page.data[0].id == "t1" and page.data[0].route == "demo"
    request = seen[0]
    assert request.url.path == "/api/traces"
    assert dict(request.url.params) == {"route": "demo", "errors": "true", "limit": "5"}
    assert request.headers["authorization"] == "Bearer sk-test"


def test_iterate_follows_cursors_to_the_end() -> None:
    pages = {
        None: {"data": [{"id": "1"}, {"id": "2"}], "next_cursor": "p2", "has_more": True},
        "p2": {"data": [{"id": "3"}], "next_cursor": None, "has_more": False},
    }

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    client = client_for(httpx.MockTransport(handle))
    assert [t.id for t in client.traces.iterate(route="demo")] == ["1", "2", "3"]


def test_server_errors_become_lmdeck_errors_with_their_fields() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = {"error": {"message": "no trace 'x'", "type": "not_found_error", "param": None, "code": "not_found"}}
        return httpx.Response(404, json=body)

    client = client_for(httpx.MockTransport(handle))
    with pytest.raises(LMDeckError) as info:
        client.traces.get("x")
    assert info.value.status == 404
    assert info.value.code == "not_found"
    assert "no trace" in str(info.value)


def test_unreachable_server_names_the_fix() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = client_for(httpx.MockTransport(handle))
    with pytest.raises(LMDeckError, match="LMDECK_BASE_URL") as info:
        client.traces.list()
    assert info.value.status is None


def test_namespaces_are_found_by_module_name() -> None:
    client = Client("http://lmdeck.test")
    assert isinstance(client.traces, Traces)
    assert client.traces is client.traces
    with pytest.raises(AttributeError, match=r"lmdeck\.sdk\.nothing_here"):
        _ = client.nothing_here


def test_environment_supplies_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMDECK_BASE_URL", "http://10.1.2.3:9000/")
    monkeypatch.setenv("LMDECK_API_KEY", "sk-env")
    client = Client()
    assert client.base_url == "http://10.1.2.3:9000"
    assert client.api_key == "sk-env"
