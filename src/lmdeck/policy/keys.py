"""API key material: random keys, their hashes and the short visible prefix.

A key is ``sk-lmdeck-`` followed by 43 random URL-safe characters (256 bits).
Only its SHA-256 is stored; the first characters after the scheme marker are
kept in clear as the key's *prefix*, which is what lists and logs show::

    key = new_key()               # 'sk-lmdeck-Qm3f...'
    hash_key(key)                 # 64 hex digits, what the store keeps
    visible_prefix(key)           # 'sk-lmdeck-Qm3f9a', enough to tell keys apart

A plain SHA-256 is enough here (no slow password hash): the keys are random
with 256 bits of entropy, so there is nothing to guess from the hash.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-lmdeck-"
VISIBLE_CHARS = 6


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def visible_prefix(key: str) -> str:
    head = len(KEY_PREFIX) if key.startswith(KEY_PREFIX) else 0
    return key[: head + VISIBLE_CHARS]


def new_id(kind: str) -> str:
    """A short random id such as ``key_3f9a0c1b2d4e``."""
    return f"{kind}_{secrets.token_hex(6)}"
