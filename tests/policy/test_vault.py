"""``{"$vault": "path#field"}`` references, read from a fake Vault's KV v2 HTTP API on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lmdeck.pipeline.principal import Principal
from lmdeck.policy.secret_refs import find_secret_refs, refuse_secret_refs
from lmdeck.policy.vault import VaultKV, bind_vault
from lmdeck.protocol import APIError
from lmdeck.settings import ConfigError, SecretRef, Settings

TOKEN = "hvs.fake-test-token"
SECRETS: dict[str, dict[str, Any]] = {
    "lmdeck/openai": {"api_key": "sk-from-vault-1", "org": "org-7"},
    "lmdeck/numbers": {"port": 8000},
}


class FakeVault:
    """A FAKE HashiCorp Vault: answers ``GET /v1/{mount}/data/{path}`` as KV version 2 does, from a dict.

    A request without ``X-Vault-Token: TOKEN`` gets Vault's 403; an unknown path its 404. It records
    the paths and namespaces asked for, so a test can count reads; ``version_1`` makes it answer as a
    KV version 1 mount.
    """

    def __init__(self, mount: str = "secret") -> None:
        self.mount = mount
        self.secrets = {path: dict(data) for path, data in SECRETS.items()}
        self.reads: list[tuple[str, str | None]] = []
        #: Answer as a KV version 1 mount does: ``{"data": {...}}``, the secret's fields at once.
        self.version_1 = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                prefix = f"/v1/{fake.mount}/data/"
                path = self.path[len(prefix) :] if self.path.startswith(prefix) else None
                fake.reads.append((self.path, self.headers.get("X-Vault-Namespace")))
                if self.headers.get("X-Vault-Token") != TOKEN:
                    self._answer(403, {"errors": ["permission denied"]})
                elif path is None or path not in fake.secrets:
                    self._answer(404, {"errors": []})
                else:
                    data = fake.secrets[path]
                    if fake.version_1:
                        self._answer(200, {"request_id": "r1", "data": {"api_key": "x"}})
                        return
                    metadata = {"created_time": "2026-12-02T00:00:00Z", "version": 1}
                    self._answer(200, {"request_id": "r1", "data": {"data": data, "metadata": metadata}})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    fake = FakeVault()
    yield fake
    fake.close()


def reader(fake: FakeVault, token: str = TOKEN, **options: Any) -> VaultKV:
    return VaultKV(fake.url, token, **options)


def test_a_field_of_a_kv_v2_secret_is_read_with_the_token(vault: FakeVault) -> None:
    assert reader(vault).read("lmdeck/openai#api_key") == "sk-from-vault-1"
    assert vault.reads == [("/v1/secret/data/lmdeck/openai", None)]


def test_the_mount_and_the_namespace_are_sent() -> None:
    fake = FakeVault(mount="kv")
    try:
        assert reader(fake, mount="kv", namespace="team-a").read("lmdeck/openai#org") == "org-7"
        assert fake.reads == [("/v1/kv/data/lmdeck/openai", "team-a")]
    finally:
        fake.close()


def test_a_wrong_token_is_a_config_error_naming_the_reference(vault: FakeVault) -> None:
    with pytest.raises(ConfigError, match=r"lmdeck/openai#api_key.*refused the token \(403\).*VAULT_TOKEN"):
        reader(vault, token="hvs.wrong").read("lmdeck/openai#api_key")


def test_a_missing_field_or_path_is_a_config_error(vault: FakeVault) -> None:
    with pytest.raises(ConfigError, match=r"has no field 'nope' \(its fields: api_key, org\)"):
        reader(vault).read("lmdeck/openai#nope")
    with pytest.raises(ConfigError, match=r"no secret at secret/lmdeck/absent \(404\)"):
        reader(vault).read("lmdeck/absent#api_key")
    with pytest.raises(ConfigError, match="not a non-empty string"):
        reader(vault).read("lmdeck/numbers#port")


def test_an_answer_that_is_not_kv_v2_is_a_config_error(vault: FakeVault) -> None:
    vault.version_1 = True
    with pytest.raises(ConfigError, match="not a KV version 2 secret: is 'secret' a KV v2 mount"):
        reader(vault).read("lmdeck/openai#api_key")


def test_an_unreachable_vault_is_a_config_error() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(ConfigError, match=r"cannot be reached.*VAULT_ADDR"):
        VaultKV(f"http://127.0.0.1:{port}", TOKEN, timeout=5.0).read("lmdeck/openai#api_key")


def test_a_vault_that_never_answers_is_a_config_error_after_the_timeout() -> None:
    # A listening socket nobody accepts from: the connection opens, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConfigError, match=r"did not answer within 0.3s"):
            VaultKV(f"http://127.0.0.1:{port}", TOKEN, timeout=0.3).read("lmdeck/openai#api_key")
        assert time.monotonic() - started < 60  # bounded by the timeout, never a hang


def test_reads_are_cached_and_a_stale_one_is_refreshed_in_the_background(vault: FakeVault) -> None:
    now = [0.0]
    kv = reader(vault, cache_ttl=60.0, clock=lambda: now[0])
    assert kv.read("lmdeck/openai#api_key") == "sk-from-vault-1"
    assert kv.read("lmdeck/openai#org") == "org-7"
    assert len(vault.reads) == 1
    vault.secrets["lmdeck/openai"]["api_key"] = "sk-from-vault-2"
    now[0] = 61.0
    assert kv.read("lmdeck/openai#api_key") == "sk-from-vault-1"  # the held value, while it refreshes
    deadline = time.monotonic() + 30
    while kv.read("lmdeck/openai#api_key") != "sk-from-vault-2":
        assert time.monotonic() < deadline, "the stale secret was never refreshed"
        time.sleep(0.01)
    assert len(vault.reads) == 2


def test_a_failed_refresh_keeps_the_value_held(vault: FakeVault) -> None:
    now = [0.0]
    kv = reader(vault, cache_ttl=1.0, clock=lambda: now[0])
    assert kv.read("lmdeck/openai#api_key") == "sk-from-vault-1"
    vault.secrets.clear()
    now[0] = 5.0
    kv.read("lmdeck/openai#api_key")
    deadline = time.monotonic() + 30
    while len(vault.reads) < 2 or kv._refreshing:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert kv.read("lmdeck/openai#api_key") == "sk-from-vault-1"


def settings(fake: FakeVault | None, ref: str = "lmdeck/openai#api_key") -> Settings:
    return Settings.model_validate(
        {
            "vault": {"address": fake.url if fake else None, "token": {"$env": "FAKE_VAULT_TOKEN"}},
            "routes": [{"name": "gpt", "targets": [{"provider": "openai", "model": "m", "api_key": {"$vault": ref}}]}],
            "credentials": {"search": {"api_key": {"$vault": "lmdeck/openai#org"}, "hosts": ["api.openai.com"]}},
        }
    )


def test_settings_references_are_read_at_start_and_resolve_from_then_on(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VAULT_TOKEN", TOKEN)
    s = settings(vault)
    kv = VaultKV.from_settings(s)
    assert kv is not None
    bind_vault(s, kv)
    assert len(vault.reads) == 1  # both fields come from one secret, read once
    target = s.routes[0].targets[0]
    assert target.api_key is not None and target.api_key.resolve() == "sk-from-vault-1"
    assert s.credentials["search"].api_key.resolve() == "org-7"
    assert repr(target.api_key) == "SecretRef(vault='lmdeck/openai#api_key')"


def test_a_failing_reference_stops_the_start_naming_it(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VAULT_TOKEN", TOKEN)
    s = settings(vault, ref="lmdeck/openai#missing")
    with pytest.raises(ConfigError, match="lmdeck/openai#missing"):
        bind_vault(s, VaultKV.from_settings(s))


def test_a_reference_without_vault_configured_names_the_fix() -> None:
    s = settings(None)
    assert VaultKV.from_settings(s) is None
    with pytest.raises(ConfigError, match=r"set vault.address \(or VAULT_ADDR\) and VAULT_TOKEN"):
        bind_vault(s, None)
    with pytest.raises(ConfigError, match="needs Vault"):
        SecretRef.model_validate({"$vault": "a#b"}).resolve()


def test_the_token_must_be_set_when_vault_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_VAULT_TOKEN", raising=False)
    s = Settings.model_validate({"vault": {"address": "http://127.0.0.1:1", "token": {"$env": "FAKE_VAULT_TOKEN"}}})
    with pytest.raises(ConfigError, match="FAKE_VAULT_TOKEN"):
        VaultKV.from_settings(s)


@pytest.mark.parametrize("bad", ["lmdeck/openai", "#field", "path#"])
def test_a_reference_names_a_path_and_a_field(bad: str) -> None:
    with pytest.raises(ValueError, match="path#field"):
        SecretRef.model_validate({"$vault": bad})
    with pytest.raises(ValueError, match="one of"):
        SecretRef.model_validate({"$vault": "a#b", "$env": "X"})


def test_vault_settings_come_from_the_environment_and_the_token_only_from_env() -> None:
    from lmdeck.config import load_settings

    s = load_settings(environ={"VAULT_ADDR": "https://vault.internal:8200", "VAULT_NAMESPACE": "ns1"})
    assert (s.vault.address, s.vault.namespace, s.vault.token.env) == (
        "https://vault.internal:8200",
        "ns1",
        "VAULT_TOKEN",
    )
    with pytest.raises(ValueError, match="VAULT_TOKEN"):
        Settings.model_validate({"vault": {"token": {"$vault": "a#b"}}})


def test_a_non_admin_may_not_write_a_vault_reference() -> None:
    body = {"versions": [{"api_key": {"$vault": "lmdeck/openai#api_key"}}]}
    assert find_secret_refs(body) == ["versions.0.api_key"]
    with pytest.raises(APIError) as refused:
        refuse_secret_refs(body, Principal(key_id="k", role="developer"))
    assert refused.value.status == 403 and "$vault" in str(refused.value.message)
    refuse_secret_refs(body, Principal(key_id="a", role="admin"))
