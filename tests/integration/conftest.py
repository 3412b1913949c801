"""Fixtures that start real servers on loopback: the fake upstream and ``lmdeck serve``.

``fake_upstream`` is one fake upstream process for the whole test run, reset before each test::

    def test_retry(fake_upstream, gateway):
        gw = gateway([{"name": "chat", "targets": [openai_target(fake_upstream)]}])
        fake_upstream.configure(script=[500, 200])

``gateway(routes, **settings)`` starts ``lmdeck serve`` with those routes (``default_routes``
off, short retry backoffs; see :class:`lmdeck.testing.servers.GatewayFactory`) and the admin
key ``gw.admin_key``. Servers with the same configuration are shared for the whole run; pass
``fresh=True`` for a private one (when a test depends on breaker state or counters). Every
process is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lmdeck.testing.servers import (
    FakeUpstreamProcess,
    GatewayFactory,
    GatewayProcess,
    openai_target,
    start_fake_upstream,
)

#: Body limit of the standard gateway: small, so oversized bodies are cheap to send.
STANDARD_MAX_BODY = 8192


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def fake_upstream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamProcess]:
    fake = start_fake_upstream(log_dir=tmp_path_factory.mktemp("fake-upstream"))
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstreamProcess) -> FakeUpstreamProcess:
    """The fake upstream of the run, back to normal behaviour with counters cleared."""
    fake_upstream_server.reset()
    return fake_upstream_server


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    """A factory: ``gateway(routes, fresh=False, env=None, **settings) -> GatewayProcess``."""
    factory = GatewayFactory(tmp_path_factory.mktemp("gateways"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def standard_gateway(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    """One shared gateway in front of the fake upstream: route ``chat`` and embeddings route ``vectors``."""
    routes = [
        {"name": "chat", "targets": [openai_target(fake_upstream)], "description": "the fake upstream"},
        {"name": "vectors", "kind": "embeddings", "targets": [openai_target(fake_upstream, "fake-embed")]},
    ]
    return gateway(routes, max_body_bytes=STANDARD_MAX_BODY)
