"""Console sign-ins: a random session id in an HttpOnly cookie, mapped in memory to the key that signed in.

    store = SessionStore(ttl_s=8 * 3600)
    session = store.open("key_123", hash_key(secret))  # after the key was authenticated
    response.set_cookie(COOKIE, session.id, ...)
    store.get(session.id)                     # None once expired or closed
    store.close(session.id)                   # sign-out

The browser never holds the API key: only the session id, which means nothing outside
this process. Each request resolves the session's key again (see :mod:`lmdeck.console.auth`),
so a key revoked or expired, or a secret rotated away, ends its console sessions at once. Sessions live in memory:
a restart signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The session cookie's name; it is sent only to ``/console``.
COOKIE = "lmdeck_console"
#: Most sessions held at once; past it the oldest are dropped (each needed a valid key to open).
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class ConsoleSession:
    """One sign-in: ``id`` (the cookie's value), the key it stands for and the hash of the secret
    that opened it (a rotated-away secret ends the session), its CSRF token, expiry (epoch seconds)."""

    id: str
    key_id: str
    secret_hash: str
    csrf_token: str
    expires_at: float

    def csrf_matches(self, presented: str | None) -> bool:
        """Whether ``presented`` is this session's CSRF token (compared in constant time)."""
        return bool(presented) and hmac.compare_digest(presented.encode(), self.csrf_token.encode())  # type: ignore[union-attr]


class SessionStore:
    """Open console sessions by id; ``ttl_s`` seconds each, counted from sign-in."""

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def open(self, key_id: str, secret_hash: str) -> ConsoleSession:
        """A new session for ``key_id``, opened with the secret hashed to ``secret_hash``, with a fresh id and CSRF token."""
        session = ConsoleSession(
            id=secrets.token_urlsafe(32),
            key_id=key_id,
            secret_hash=secret_hash,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.ttl_s,
        )
        with self._lock:
            self._sweep()
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> ConsoleSession | None:
        """The open session ``session_id`` names, or None (unknown, closed or expired)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= self.clock():
                del self._sessions[session_id]
                return None
            return session

    def close(self, session_id: str | None) -> None:
        """End ``session_id`` (sign-out); unknown ids are ignored."""
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _sweep(self) -> None:
        now = self.clock()
        for sid in [sid for sid, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[sid]
