"""Provider secrets, encrypted at rest with a master key (Fernet: AES-128-CBC + HMAC-SHA256).

A route target refers to a stored secret by name instead of holding it::

    routes:
      - name: gpt-4o
        targets:
          - {provider: openai, model: gpt-4o, api_key: {"$secret": "openai-prod"}}

and an admin stores it once (``PUT /api/secrets/openai-prod``)::

    box = SecretBox.from_settings(settings)
    store = SecretStore(db, box)
    store.put("openai-prod", "sk-...")
    store.get("openai-prod")          # decrypted, only inside the gateway
    store.names()                     # what the API lists: names and times, never values

The master key comes from ``LMDECK_MASTER_KEY``; without it, one is generated
into the data directory (mode 0600) and a log line says where.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.settings import ConfigError, SecretRef, Settings

log = logging.getLogger(__name__)

MASTER_KEY_FILE = "master.key"


class SecretNotFound(LookupError):
    pass


def _fernet(raw: str, source: str) -> Fernet:
    try:
        return Fernet(raw.strip().encode())
    except (ValueError, TypeError):
        raise ConfigError(
            f"the master key from {source} is not a Fernet key: generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        ) from None


class SecretBox:
    """Encrypts and decrypts with the master key."""

    def __init__(self, fernet: Fernet) -> None:
        self._fernet = fernet

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.master_key is not None:
            return cls(_fernet(settings.master_key.resolve(), "LMDECK_MASTER_KEY"))
        path = Path(settings.data_dir) / MASTER_KEY_FILE
        if path.exists():
            return cls(_fernet(path.read_text(), str(path)))
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        log.warning(
            "generated a master key for provider secrets at %s (mode 0600); keep it safe, or set "
            "LMDECK_MASTER_KEY to hold it outside the data directory",
            path,
        )
        return cls(Fernet(key))

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str, name: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                f"secret {name!r} cannot be decrypted with this master key: was LMDECK_MASTER_KEY changed? "
                "Restore the old key or store the secret again"
            ) from None


class SecretStore:
    """Named provider secrets in the store (blocking calls: run them off the event loop)."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box

    def put(self, name: str, value: str) -> bool:
        """Store or replace a secret; True when it was new."""
        now = time.time()
        ciphertext = self.box.encrypt(value)
        with self.db.engine.begin() as conn:
            updated = conn.execute(
                text("UPDATE provider_secrets SET ciphertext = :c, updated_at = :t WHERE name = :n"),
                {"c": ciphertext, "t": now, "n": name},
            )
            if updated.rowcount:
                return False
            conn.execute(
                text("INSERT INTO provider_secrets (name, ciphertext, created_at, updated_at) VALUES (:n, :c, :t, :t)"),
                {"n": name, "c": ciphertext, "t": now},
            )
        return True

    def get(self, name: str) -> str:
        with self.db.engine.connect() as conn:
            token = conn.execute(text("SELECT ciphertext FROM provider_secrets WHERE name = :n"), {"n": name}).scalar()
        if token is None:
            raise ConfigError(f"no stored secret {name!r}: store it with PUT /api/secrets/{name} (admin)")
        return self.box.decrypt(str(token), name)

    def names(self) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT name, created_at, updated_at FROM provider_secrets ORDER BY name"))
            return [{"name": r[0], "created_at": float(r[1]), "updated_at": float(r[2])} for r in rows]

    def delete(self, name: str) -> None:
        with self.db.engine.begin() as conn:
            deleted = conn.execute(text("DELETE FROM provider_secrets WHERE name = :n"), {"n": name})
        if deleted.rowcount == 0:
            raise SecretNotFound(f"no stored secret {name!r}")


def secret_refs(settings: Settings) -> list[SecretRef]:
    """Every ``$secret`` reference in the settings' route targets and credentials.

    (A registered model version's own reference is bound when it is served: see
    :meth:`lmdeck.policy.credentials.CredentialGate.api_key_for`.)
    """
    refs = [t.api_key for r in settings.routes for t in r.targets if t.api_key is not None]
    refs += [c.api_key for c in settings.credentials.values()]
    return [ref for ref in refs if ref.secret is not None]


def bind_secrets(settings: Settings, store: SecretStore) -> None:
    """Let each ``{"$secret": name}`` in the settings resolve through the store."""
    for ref in secret_refs(settings):
        ref.bind(store.get)
