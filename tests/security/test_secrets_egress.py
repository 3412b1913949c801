"""The egress policy, attacked through a real ``lmdeck serve``.

Model versions are where a non-admin names an upstream URL; each attack aims one at a
cloud-metadata or link-local address, an odd scheme, a host nobody allowed, or a name that
is allowed but resolves to an address that is not (checked again at connect time). The
FAKE listener standing in for the attacker (:class:`RecordingListener`) must receive nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lmdeck.testing.listener import RecordingListener
from lmdeck.testing.servers import TEST_SETTINGS, GatewayProcess, ServerStartError, gateway_process, start_gateway

pytestmark = pytest.mark.integration


class Deck:
    def __init__(self, gw: GatewayProcess, listener: RecordingListener) -> None:
        self.gw = gw
        self.listener = listener
        self.http = httpx.Client(base_url=gw.url, timeout=30.0)
        created = self.admin("POST", "/api/keys", json={"name": "dev", "role": "developer"})
        assert created.status_code == 201, created.text
        self.developer = str(created.json()["key"])
        self.admin("POST", "/api/registry/models", json={"name": "bot"})

    def call(self, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"authorization": f"Bearer {key}"}, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(self.gw.admin_key, method, path, **kwargs)

    def dev(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(self.developer, method, path, **kwargs)

    def assert_listener_untouched(self) -> None:
        assert self.listener.connections == 0 and self.listener.received == b"", self.listener.received[:300]


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deck]:
    """A gateway that allows the name ``localhost`` but no loopback address, and the attacker's listener."""
    root = tmp_path_factory.mktemp("secrets-egress")
    with RecordingListener() as listener:
        config = {
            **TEST_SETTINGS,
            "egress": {"allow": ["localhost"], "allow_loopback": False},
            "routes": [{"name": "bot", "targets": ["registry:bot@production"]}],
        }
        with gateway_process(config, data_dir=root / "gw") as gw:
            yield Deck(gw, listener)


def _error(response: httpx.Response) -> dict[str, Any]:
    return dict(response.json()["error"])


ATTACKS = [
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", 403, "egress_metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", 403, "egress_metadata"),
    ("http://[::ffff:a9fe:a9fe]/latest/", 403, "egress_metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", 403, "egress_metadata"),
    ("http://169.254.10.10:8080/v1", 403, "egress_link_local"),
    ("http://[fe80::1]/v1", 403, "egress_link_local"),
    ("file:///etc/passwd", 400, "egress_scheme"),
    ("gopher://127.0.0.1:{port}/_PING", 400, "egress_scheme"),
    ("dict://127.0.0.1:{port}/info", 400, "egress_scheme"),
    ("http://127.0.0.1:{port}/v1", 403, "egress_loopback"),
    ("https://attacker.example/v1", 403, "egress_not_allowed"),
]


@pytest.mark.parametrize(("url", "status", "code"), ATTACKS, ids=[a[2] + ":" + a[0][:28] for a in ATTACKS])
def test_a_version_pointing_at_a_refused_upstream_is_refused_at_write_time(
    deck: Deck, url: str, status: int, code: str
) -> None:
    url = url.format(port=deck.listener.port)
    response = deck.dev("POST", "/api/registry/models/bot/versions", json={"model": "m", "base_url": url})
    assert response.status_code == status, response.text
    error = _error(response)
    assert error["param"] == "base_url" and error["code"] == code, error
    assert error["message"].startswith("base_url: ")
    deck.assert_listener_untouched()


def test_the_address_rules_hold_for_admins_too(deck: Deck) -> None:
    version = deck.admin(
        "POST", "/api/registry/models/bot/versions", json={"model": "m", "base_url": "http://169.254.169.254/v1"}
    )
    assert version.status_code == 403 and _error(version)["code"] == "egress_metadata", version.text
    route = {"name": "meta", "targets": [{"provider": "openai", "model": "m", "base_url": "http://[fe80::a]/v1"}]}
    applied = deck.admin("POST", "/api/registry/apply", json={"routes": [route]})
    assert applied.status_code == 403, applied.text
    assert _error(applied)["param"] == "routes.0.targets.0.base_url" and _error(applied)["code"] == "egress_link_local"
    # An admin may point at a host nobody listed: that is the admin's configuration.
    own = deck.admin(
        "POST", "/api/registry/models/bot/versions", json={"model": "m", "base_url": "https://vllm.example/v1"}
    )
    assert own.status_code == 201, own.text


def test_an_allowed_name_that_resolves_to_a_refused_address_is_refused_at_connect_time(deck: Deck) -> None:
    """``localhost`` is in the allow-list; the address it resolves to (loopback) is not: nothing connects."""
    spec = {"provider": "openai", "model": "m", "base_url": f"http://localhost:{deck.listener.port}/v1"}
    created = deck.dev("POST", "/api/registry/models/bot/versions", json=spec)
    assert created.status_code == 201, created.text
    moved = deck.admin(
        "PUT", "/api/registry/models/bot/aliases/production", json={"version": created.json()["version"]}
    )
    assert moved.status_code == 200, moved.text
    client = openai.OpenAI(base_url=deck.gw.base_url, api_key=deck.developer, max_retries=0, timeout=30)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "egress_refused"
    assert "localhost" not in str(refused.value.message) and "127.0.0.1" not in str(refused.value.message)
    assert "egress policy refused" in deck.gw.log()
    deck.assert_listener_untouched()


def test_a_config_file_route_to_the_metadata_address_stops_the_start(tmp_path: Path) -> None:
    config = {
        **TEST_SETTINGS,
        "routes": [{"name": "meta", "targets": [{"model": "m", "base_url": "http://169.254.169.254/latest"}]}],
    }
    with pytest.raises(ServerStartError) as refused:
        start_gateway(config, data_dir=tmp_path, timeout=30, attempts=1)
    assert "routes.0.targets.0.base_url" in str(refused.value) and "egress rule: metadata" in str(refused.value)
