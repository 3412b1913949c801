"""The admin key: taken from ``LMDECK_ADMIN_KEY`` or generated and printed once at first start.

It is an ordinary row of the keys table (id ``key_admin``, role admin), so it can
be listed, rotated and revoked like any other key::

    key_id = bootstrap_admin_key(IdentityStore(db), settings)

When ``LMDECK_ADMIN_KEY`` is set, the stored hash follows it: changing the
variable and restarting replaces the admin key. It must be at least 32 characters
and hard to guess (:func:`lmdeck.policy.keys.admin_key_weakness`); only its
SHA-256 is kept, in the keys table, like every other key's.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from lmdeck.policy.identity_store import IdentityStore, NotFound
from lmdeck.policy.keys import KEY_PREFIX, admin_key_weakness, hash_key, new_key
from lmdeck.settings import ConfigError, Settings

__all__ = ["ADMIN_KEY_ID", "bootstrap_admin_key"]

log = logging.getLogger(__name__)

ADMIN_KEY_ID = "key_admin"
ADMIN_KEY_NAME = "bootstrap admin"
#: Where an earlier lmdeck kept the admin key's hash; adopted into the keys table once.
LEGACY_HASH_FILE = "admin_key.sha256"


def _announce(key: str) -> None:
    print(
        f"\nlmdeck admin key (shown once, store it now): {key}\n"
        "  use it as the OpenAI api_key, or set LMDECK_ADMIN_KEY to choose your own.\n",
        file=sys.stderr,
        flush=True,
    )


def bootstrap_admin_key(store: IdentityStore, settings: Settings, announce: bool = True) -> str:
    """Make sure the admin key exists; returns its id. Blocking: call it at start-up."""
    try:
        existing = store.key(ADMIN_KEY_ID)
    except NotFound:
        existing = None
    if settings.admin_key is not None:
        secret = settings.admin_key.resolve()
        weakness = admin_key_weakness(secret)
        if weakness is not None:
            raise ConfigError(
                f"LMDECK_ADMIN_KEY is too weak: {weakness}. Generate one with "
                "`python -c \"import secrets; print('sk-lmdeck-' + secrets.token_urlsafe(32))\"`, "
                "or unset it and lmdeck prints a generated key at first start"
            )
        if existing is None:
            _create(store, secret)
        elif hash_key(secret) not in {s.hash for s in store.secrets_of(ADMIN_KEY_ID)}:
            store.replace_secret(ADMIN_KEY_ID, secret)
            log.info("the admin key now follows LMDECK_ADMIN_KEY")
        if existing is not None and existing.revoked_at is not None:
            log.warning("the bootstrap admin key %s is revoked; LMDECK_ADMIN_KEY does not revive it", ADMIN_KEY_ID)
        return ADMIN_KEY_ID
    if existing is not None:
        return ADMIN_KEY_ID
    legacy = Path(settings.data_dir) / LEGACY_HASH_FILE
    if legacy.exists():
        if _create(store, new_key()):
            store.replace_secret_hash(ADMIN_KEY_ID, legacy.read_text().strip(), KEY_PREFIX)
        return ADMIN_KEY_ID
    secret = new_key()
    if _create(store, secret) and announce:
        _announce(secret)
    return ADMIN_KEY_ID


def _create(store: IdentityStore, secret: str) -> bool:
    """Create the admin key row; False when another process won the race."""
    try:
        store.create_key(ADMIN_KEY_NAME, "admin", key_id=ADMIN_KEY_ID, secret=secret, created_by="bootstrap")
    except IntegrityError:
        return False
    return True
