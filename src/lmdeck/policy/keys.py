"""API key material: random keys, their hashes and the short visible prefix.

A key is ``sk-lmdeck-`` followed by 43 random URL-safe characters (256 bits).
Only its SHA-256 is stored; the first characters after the scheme marker are
kept in clear as the key's *prefix*, which is what lists and logs show::

    key = new_key()               # 'sk-lmdeck-Qm3f...'
    hash_key(key)                 # 64 hex digits, what the store keeps
    visible_prefix(key)           # 'sk-lmdeck-Qm3f9a', enough to tell keys apart

A plain SHA-256 is enough here (no slow password hash): the keys are random
with 256 bits of entropy, so there is nothing to guess from the hash. The one key
a person may choose, ``LMDECK_ADMIN_KEY``, must be as hard to guess
(:func:`admin_key_weakness`)::

    admin_key_weakness("sk-lmdeck-admin")   # 'it has 15 characters; at least 32 are needed'
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-lmdeck-"
VISIBLE_CHARS = 6
#: A chosen admin key needs this many characters ...
MIN_ADMIN_KEY_LENGTH = 32
#: ... and at least 10**30 guesses (about 100 bits) by zxcvbn's estimate of how people choose keys.
MIN_ADMIN_KEY_GUESSES_LOG10 = 30.0
#: zxcvbn's time grows with the length; a longer key is judged by its first characters.
_ESTIMATED_CHARS = 100


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


def admin_key_weakness(key: str) -> str | None:
    """Why ``key`` is too weak to be the admin key (the rule it breaks), or None when it is strong enough.

    Rules: at least :data:`MIN_ADMIN_KEY_LENGTH` characters, and at least
    10^:data:`MIN_ADMIN_KEY_GUESSES_LOG10` guesses as zxcvbn estimates them (dictionary words,
    repeats, sequences and keyboard patterns count for little).
    """
    if len(key) < MIN_ADMIN_KEY_LENGTH:
        return f"it has {len(key)} characters; at least {MIN_ADMIN_KEY_LENGTH} are needed"
    from zxcvbn import zxcvbn

    guesses = float(zxcvbn(key[:_ESTIMATED_CHARS])["guesses_log10"])
    if guesses < MIN_ADMIN_KEY_GUESSES_LOG10:
        return (
            f"it would take about 10^{guesses:.0f} guesses (words, repeats or sequences); "
            f"at least 10^{MIN_ADMIN_KEY_GUESSES_LOG10:.0f} (about 100 random bits) are needed"
        )
    return None
