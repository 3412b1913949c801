"""Secrets read from HashiCorp Vault's KV version 2 engine: ``{"$vault": "path#field"}``.

A route target, a credential, or the admin and master keys may name a field of a Vault secret::

    vault:
      address: https://vault.internal:8200   # or VAULT_ADDR
      mount: secret                          # the KV v2 engine's path (default)
    routes:
      - name: gpt-4o
        targets:
          - {provider: openai, model: gpt-4o, api_key: {"$vault": "lmdeck/openai#api_key"}}

which reads ``GET {address}/v1/secret/data/lmdeck/openai`` with ``X-Vault-Token`` (``VAULT_TOKEN``)
and takes ``data.data.api_key`` from the answer::

    vault = VaultKV.from_settings(settings)      # None when vault.address is unset
    bind_vault(settings, vault)                  # at start-up: reads every reference once, or ConfigError
    vault.read("lmdeck/openai#api_key")          # "sk-...", from the cache for vault.cache_ttl seconds

Reads are blocking HTTP calls bounded by ``vault.timeout`` seconds, made at start-up (where a
failure stops lmdeck with a :class:`~lmdeck.settings.ConfigError` naming the reference) and, for a
model version that names a path not read before, when the version is first served. Once read, a
secret is served from memory; after ``cache_ttl`` seconds the next read returns the value held and
fetches a fresh one on a background thread, so no request waits on Vault (a failed refresh is
logged, and the value held is kept).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from lmdeck.settings import ConfigError, SecretRef, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Read:
    at: float
    data: dict[str, Any]


def split_reference(reference: str) -> tuple[str, str]:
    """``"path#field"`` as ``(path, field)``; :class:`ConfigError` when it names no field.

    >>> split_reference("lmdeck/openai#api_key")
    ('lmdeck/openai', 'api_key')
    """
    path, sep, field = reference.partition("#")
    path = path.strip("/")
    if not sep or not path or not field:
        raise ConfigError(f'{{"$vault": {reference!r}}} names no field: write {{"$vault": "path#field"}}')
    return path, field


class VaultKV:
    """Reads fields of KV v2 secrets from one Vault mount, cached for ``cache_ttl`` seconds (blocking calls).

    >>> vault = VaultKV("http://127.0.0.1:8200", "hvs.token", mount="secret")  # doctest: +SKIP
    >>> vault.read("lmdeck/openai#api_key")  # doctest: +SKIP
    'sk-...'

    Errors are :class:`~lmdeck.settings.ConfigError` naming the reference and the fix: Vault
    unreachable or slower than ``timeout`` seconds, the token refused (403), no secret at the path
    (404), an answer that is not KV v2's, a missing field or one that is not a string.
    """

    def __init__(
        self,
        address: str,
        token: str,
        *,
        mount: str = "secret",
        namespace: str | None = None,
        timeout: float = 5.0,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.address = address.rstrip("/")
        self.mount = mount.strip("/")
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self._clock = clock
        headers = {"X-Vault-Token": token, "Accept": "application/json"}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout), transport=transport)
        self._cache: dict[str, _Read] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> VaultKV | None:
        """The reader ``settings.vault`` describes, or None when ``vault.address`` is unset; :class:`ConfigError`
        when the token's environment variable is not set."""
        vault = settings.vault
        if vault.address is None:
            return None
        return cls(
            vault.address,
            vault.token.resolve(),
            mount=vault.mount,
            namespace=vault.namespace,
            timeout=vault.timeout,
            cache_ttl=vault.cache_ttl,
        )

    def read(self, reference: str) -> str:
        """The field ``reference`` (``"path#field"``) names, as a string."""
        path, field = split_reference(reference)
        data = self._secret(path, reference)
        if field not in data:
            fields = ", ".join(sorted(data)) or "none"
            raise ConfigError(
                f'{{"$vault": {reference!r}}}: the secret at {self.mount}/{path} has no field {field!r} '
                f"(its fields: {fields}): add it in Vault or name another field"
            )
        value = data[field]
        if not isinstance(value, str) or not value:
            raise ConfigError(f'{{"$vault": {reference!r}}}: field {field!r} is not a non-empty string in Vault')
        return value

    def close(self) -> None:
        self._client.close()

    def _secret(self, path: str, reference: str) -> dict[str, Any]:
        with self._lock:
            held = self._cache.get(path)
            stale = held is not None and self._clock() - held.at >= self.cache_ttl
            if stale and path not in self._refreshing:
                self._refreshing.add(path)
                threading.Thread(target=self._refresh, args=(path, reference), name="lmdeck-vault", daemon=True).start()
        if held is not None:
            return held.data
        data = self._fetch(path, reference)
        with self._lock:
            self._cache[path] = _Read(self._clock(), data)
        return data

    def _refresh(self, path: str, reference: str) -> None:
        try:
            data = self._fetch(path, reference)
        except ConfigError as exc:
            log.warning("refreshing a secret from Vault failed; keeping the one held: %s", exc)
        else:
            with self._lock:
                self._cache[path] = _Read(self._clock(), data)
        finally:
            with self._lock:
                self._refreshing.discard(path)

    def _fetch(self, path: str, reference: str) -> dict[str, Any]:
        url = f"{self.address}/v1/{quote(self.mount)}/data/{quote(path)}"
        where = f'{{"$vault": {reference!r}}}'
        try:
            answer = self._client.get(url)
        except httpx.TimeoutException:
            raise ConfigError(
                f"{where}: Vault at {self.address} did not answer within {self.timeout:g}s: "
                "check vault.address (VAULT_ADDR) and that Vault is up, or raise vault.timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"{where}: Vault at {self.address} cannot be reached ({type(exc).__name__}: {exc}): "
                "check vault.address (VAULT_ADDR) and that Vault is up"
            ) from None
        if answer.status_code == 403:
            raise ConfigError(
                f"{where}: Vault refused the token (403): check VAULT_TOKEN and that its policy allows "
                f"`read` on {self.mount}/data/{path}"
            )
        if answer.status_code == 404:
            raise ConfigError(
                f"{where}: Vault has no secret at {self.mount}/{path} (404): write it "
                f"(`vault kv put -mount={self.mount} {path} ...`) or fix the path or vault.mount"
            )
        if answer.status_code != 200:
            raise ConfigError(
                f"{where}: Vault answered {answer.status_code} for {self.mount}/data/{path}: {_errors(answer)}"
            )
        try:
            data = answer.json()["data"]["data"]
        except (ValueError, KeyError, TypeError):
            data = None
        if not isinstance(data, dict):
            raise ConfigError(
                f"{where}: Vault's answer for {self.mount}/data/{path} is not a KV version 2 secret: "
                f"is {self.mount!r} a KV v2 mount (vault.mount)?"
            )
        return data


def _errors(answer: httpx.Response) -> str:
    try:
        errors = answer.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    return "; ".join(str(e) for e in errors) if isinstance(errors, list) and errors else "no error text"


def settings_refs(settings: Settings) -> Iterator[SecretRef]:
    """Every secret reference in the settings: the admin and master keys, route targets, credentials."""
    for ref in (settings.admin_key, settings.master_key):
        if ref is not None:
            yield ref
    for route in settings.routes:
        for target in route.targets:
            if target.api_key is not None:
                yield target.api_key
    for credential in settings.credentials.values():
        yield credential.api_key


def bind_vault(settings: Settings, vault: VaultKV | None) -> None:
    """Let each ``{"$vault": ...}`` in the settings resolve through ``vault``, reading each once now.

    Raises :class:`ConfigError` naming the reference when Vault is not configured or the read fails.
    """
    for ref in settings_refs(settings):
        if ref.vault is None:
            continue
        if vault is None:
            raise ConfigError(
                f'secret {{"$vault": {ref.vault!r}}} needs Vault: set vault.address (or VAULT_ADDR) and VAULT_TOKEN'
            )
        ref.bind_vault(vault.read)
        vault.read(ref.vault)
