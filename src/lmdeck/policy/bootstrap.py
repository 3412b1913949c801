"""The admin key: taken from ``LMDECK_ADMIN_KEY`` or generated and printed once at first start."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from lmdeck.policy.auth import hash_key
from lmdeck.settings import Settings

KEY_PREFIX = "sk-lmdeck-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def admin_key_hash(settings: Settings, announce: bool = True) -> str:
    """The SHA-256 of the admin key; the plaintext is never stored."""
    if settings.admin_key is not None:
        return hash_key(settings.admin_key.resolve())
    path = Path(settings.data_dir) / "admin_key.sha256"
    if path.exists():
        return path.read_text().strip()
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hash_key(key))
    path.chmod(0o600)
    if announce:
        print(
            f"\nlmdeck admin key (shown once, store it now): {key}\n"
            "  use it as the OpenAI api_key, or set LMDECK_ADMIN_KEY to choose your own.\n",
            file=sys.stderr,
            flush=True,
        )
    return hash_key(key)
