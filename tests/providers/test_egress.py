"""The egress policy: its write-time rules, and its connect-time check inside the aiohttp transport.

The connect-time tests use a FAKE DNS resolver that answers what the test says, so that a
name can re-resolve (DNS rebinding) without any network; the refused sockets are never
connected, so no packet leaves for 169.254.169.254.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from lmdeck.providers.base import UpstreamError
from lmdeck.providers.egress import EgressPolicy, host_category
from lmdeck.providers.transport import Timeout
from lmdeck.providers.transport_aiohttp import AiohttpTransport
from lmdeck.settings import ConfigError, Settings

AMPLE = Timeout.for_target(5)


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://168.63.129.16/machine", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://METADATA.google.internal./", "metadata"),
        ("http://169.254.1.7:8080/v1", "link_local"),
        ("http://[fe80::1%25eth0]/v1", "link_local"),
        ("http://224.0.0.1/", "reserved"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme"),
        ("ftp://example.com/", "scheme"),
        ("//example.com/v1", "scheme"),
        ("http:///v1", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
    ],
)
def test_dangerous_urls_are_refused_in_every_role(url: str, rule: str) -> None:
    policy = EgressPolicy(allow=["*.example.com"], admin_hosts=["metadata.example.com"])
    for trusted in (True, False):
        refused = policy.refusal(url, trusted=trusted)
        assert refused is not None and refused.rule == rule, (url, trusted, refused)
        error = refused.api_error("base_url")
        assert error.param == "base_url" and error.code == f"egress_{rule}"
        assert error.status == (400 if rule in ("scheme", "invalid_url") else 403)


def test_only_an_explicit_allow_entry_lets_a_metadata_or_link_local_address_through() -> None:
    assert EgressPolicy(allow=["169.254.169.254"]).refusal("http://169.254.169.254/", trusted=False) is None
    assert EgressPolicy(allow=["169.254.0.0/16"]).refusal("http://169.254.3.4/", trusted=True) is None
    assert (
        EgressPolicy(allow=["metadata.google.internal"]).refusal("http://metadata.google.internal/", trusted=True)
        is None
    )
    # Hosts the admin's routes name do not lift the address rules.
    assert EgressPolicy(admin_hosts=["169.254.169.254"]).refusal("http://169.254.169.254/", trusted=True) is not None


def test_non_admin_urls_must_name_a_listed_host() -> None:
    policy = EgressPolicy(allow=["*.corp.example", "10.0.0.0/8", "api.vendor.example"], admin_hosts=["vllm.internal"])
    for url in (
        "https://api.vendor.example/v1",
        "https://models.corp.example/v1",
        "http://10.1.2.3:8000/v1",
        "http://vllm.internal:8000/v1",
        "http://127.0.0.1:9100/v1",
        "http://localhost:9100/v1",
    ):
        assert policy.refusal(url, trusted=False) is None, url
    for url in ("https://attacker.example/v1", "http://192.168.1.5/v1", "https://corp.example.evil/"):
        refused = policy.refusal(url, trusted=False)
        assert refused is not None and refused.rule == "not_allowed", url
        assert policy.refusal(url, trusted=True) is None  # an admin's own configuration
    assert policy.refusal("https://new.example/v1", trusted=False, extra_hosts=["new.example"]) is None


def test_loopback_follows_allow_loopback() -> None:
    closed = EgressPolicy(allow_loopback=False)
    for url in ("http://127.0.0.1:9100/v1", "http://localhost/v1", "http://[::1]/v1", "http://0.0.0.0:80/"):
        refused = closed.refusal(url, trusted=True)
        assert refused is not None and refused.rule == "loopback", url
    assert EgressPolicy(allow_loopback=False, allow=["127.0.0.1"]).refusal("http://127.0.0.1/", trusted=True) is None
    assert closed.address_refusal("127.0.0.1") is not None
    assert EgressPolicy(allow_loopback=True).address_refusal("127.0.0.1") is None


def test_connect_time_rules_look_at_the_address_only() -> None:
    policy = EgressPolicy(allow=["metadata.google.internal"])
    assert policy.address_refusal("169.254.169.254") is not None  # a name in `allow` does not lift the address rule
    assert policy.address_refusal("::ffff:169.254.169.254") is not None
    assert policy.address_refusal("93.184.216.34") is None
    assert host_category("printer.localhost") == "loopback"


def test_settings_validate_the_egress_section() -> None:
    settings = Settings.model_validate({"egress": {"allow": ["api.example.com"], "schemes": ["https"]}})
    policy = EgressPolicy.from_settings(settings)
    refused = policy.refusal("http://api.example.com/v1", trusted=False)
    assert refused is not None and refused.rule == "scheme"
    with pytest.raises(ValueError, match="schemes"):
        Settings.model_validate({"egress": {"schemes": ["gopher"]}})


def test_a_config_file_target_on_a_refused_address_stops_the_start() -> None:
    from lmdeck.providers.egress import check_config_egress

    settings = Settings.model_validate(
        {"routes": [{"name": "r", "targets": [{"model": "m", "base_url": "http://169.254.169.254/v1"}]}]}
    )
    with pytest.raises(ConfigError, match=r"routes\.0\.targets\.0\.base_url.*metadata"):
        check_config_egress(settings, EgressPolicy.from_settings(settings))


class ScriptedResolver(AbstractResolver):
    """A FAKE resolver: each lookup of a name answers the next address of its script."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = {name: list(addresses) for name, addresses in answers.items()}
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        address = self.answers[host].pop(0)
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            ResolveResult(hostname=host, host=address, port=port, family=kind, proto=0, flags=socket.AI_NUMERICHOST)
        ]

    async def close(self) -> None:
        return None


async def _loopback_server() -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1]), seen


class RecordingPolicy(EgressPolicy):
    """The real policy, remembering every address the transport asked about at connect time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked: list[str] = []

    def address_refusal(self, address: Any) -> Any:
        self.asked.append(str(address))
        return super().address_refusal(address)


async def test_a_name_that_re_resolves_to_the_metadata_address_is_refused_at_connect_time() -> None:
    server, port, seen = await _loopback_server()
    resolver = ScriptedResolver({"upstream.example": ["127.0.0.1", "169.254.169.254"]})
    policy = RecordingPolicy(allow=["upstream.example"])
    transport = AiohttpTransport(egress=policy, resolver=resolver)
    try:
        url = f"http://upstream.example:{port}/v1/chat/completions"
        first = await transport.post(url, b"{}", {}, AMPLE)
        assert first.status == 200 and len(seen) == 1
        transport.session().connector.clear_dns_cache()  # type: ignore[union-attr]
        with pytest.raises(UpstreamError) as refused:
            await transport.post(url, b"{}", {}, AMPLE)
        assert refused.value.status == 403 and refused.value.kind == "egress_refused"
        assert not refused.value.retryable
        assert resolver.lookups == ["upstream.example", "upstream.example"]
        # The address checked is the address the socket was for; the refused one got no socket.
        assert policy.asked == ["127.0.0.1", "169.254.169.254"] and len(seen) == 1
    finally:
        await transport.aclose()
        server.close()


async def test_literal_addresses_and_schemes_are_refused_before_any_connection() -> None:
    transport = AiohttpTransport(egress=EgressPolicy(allow_loopback=False))
    try:
        for url in ("http://127.0.0.1:9/v1", "http://169.254.169.254/latest", "file:///etc/passwd"):
            with pytest.raises(UpstreamError) as refused:
                await transport.post(url, b"{}", {}, AMPLE)
            assert refused.value.kind == "egress_refused", url
        with pytest.raises(UpstreamError) as streamed:
            async with transport.stream("http://[::1]:9/v1", b"{}", {}, AMPLE):
                pass
        assert streamed.value.kind == "egress_refused"
    finally:
        await transport.aclose()


async def test_without_a_policy_the_transport_connects_anywhere_it_is_told() -> None:
    server, port, seen = await _loopback_server()
    transport = AiohttpTransport()
    try:
        answer = await transport.post(f"http://127.0.0.1:{port}/v1", b"{}", {}, AMPLE)
        assert answer.status == 200 and len(seen) == 1
        assert isinstance(transport.session(), aiohttp.ClientSession)
    finally:
        await transport.aclose()
        server.close()
