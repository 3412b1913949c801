"""The admin key through a real ``lmdeck serve``: strong enough, kept only as a hash, sent only as a bearer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from lmdeck.testing.servers import TEST_SETTINGS, ServerStartError, gateway_process, start_gateway

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("sk-lmdeck-admin-2024", "at least 32 are needed"),
        ("sk-lmdeck-password-password-password-1234", "guesses"),
        ("a" * 64, "guesses"),
    ],
)
def test_a_weak_admin_key_stops_the_start_naming_the_rule(tmp_path: Path, key: str, rule: str) -> None:
    with pytest.raises(ServerStartError) as refused:
        start_gateway({**TEST_SETTINGS}, data_dir=tmp_path, admin_key=key, timeout=30, attempts=1)
    message = str(refused.value)
    assert "LMDECK_ADMIN_KEY is too weak" in message and rule in message, message
    assert key not in message


def test_the_admin_key_is_stored_as_its_hash_only_and_read_only_from_the_bearer_header(tmp_path: Path) -> None:
    with gateway_process({**TEST_SETTINGS}, data_dir=tmp_path) as gw:
        bearer = httpx.get(f"{gw.url}/api/keys", headers=gw.headers(), timeout=10)
        assert bearer.status_code == 200
        assert any(k["id"] == "key_admin" for k in bearer.json()["data"])
        other = httpx.get(f"{gw.url}/api/keys", headers={"x-api-key": gw.admin_key}, timeout=10)
        assert other.status_code == 401, other.text
        error = other.json()["error"]
        assert error["code"] == "missing_api_key" and "x-api-key" in error["message"]
        inference = httpx.post(
            f"{gw.url}/v1/chat/completions",
            headers={"x-api-key": gw.admin_key},
            json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert inference.status_code == 401
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".log"))
    assert gw.admin_key.encode() not in stored
    assert hashlib.sha256(gw.admin_key.encode()).hexdigest().encode() in stored
