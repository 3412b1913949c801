"""Key lookups from memory: the request path never reads the store to authenticate.

    cache = KeyCache(IdentityStore(db))
    cache.load()                              # at start-up (blocking)
    principal = await cache.authenticate("sk-lmdeck-...")
    await cache.reload()                      # after a change, and every ``policy.refresh_interval``

Expiry, rotation grace periods and revocation are checked against the clock at
each lookup, so a key stops working the moment it expires or its grace period
ends. A change made by this process reloads the cache at once; one made by
another process is seen within ``refresh_interval``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from lmdeck.pipeline.principal import Principal
from lmdeck.policy.identities import ApiKey, KeySecret, Team
from lmdeck.policy.identity_store import IdentityStore, Snapshot
from lmdeck.policy.keys import hash_key
from lmdeck.protocol.access import Role

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def _narrowest(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def principal_of(key: ApiKey, team: Team | None) -> Principal:
    """The caller a key stands for: the key's rules narrowed by its team's."""
    return Principal(
        key_id=key.id,
        role=key.role,
        team_id=key.team_id,
        user_id=key.user_id,
        name=key.name,
        allowed_models=_narrowest(key.allowed_models, team.allowed_models if team else None),
        allowed_tags=_narrowest(key.allowed_tags, team.allowed_tags if team else None),
    )


@dataclass(frozen=True)
class _Entry:
    secret: KeySecret
    key: ApiKey
    principal: Principal


class KeyCache:
    """Keys, teams and their principals, held in memory and refreshed from the store."""

    def __init__(self, store: IdentityStore, *, refresh_interval: float = 5.0, clock: Clock = time.time) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self.clock = clock
        self._by_hash: dict[str, _Entry] = {}
        self._keys: dict[str, ApiKey] = {}
        self._teams: dict[str, Team] = {}
        self.loaded_at: float | None = None

    def load(self) -> None:
        """Read everything from the store (blocking) and swap it in at once."""
        self.apply(self.store.snapshot())

    def apply(self, snapshot: Snapshot) -> None:
        teams = {t.id: t for t in snapshot.teams}
        keys = {k.id: k for k in snapshot.keys}
        by_hash: dict[str, _Entry] = {}
        principals: dict[str, Principal] = {}
        for secret in snapshot.secrets:
            key = keys.get(secret.key_id)
            if key is None:
                continue
            principal = principals.get(key.id)
            if principal is None:
                principal = principals[key.id] = principal_of(key, teams.get(key.team_id or ""))
            by_hash[secret.hash] = _Entry(secret, key, principal)
        self._teams, self._keys, self._by_hash = teams, keys, by_hash
        self.loaded_at = self.clock()

    async def reload(self) -> None:
        snapshot = await anyio.to_thread.run_sync(self.store.snapshot)
        self.apply(snapshot)

    async def authenticate(self, token: str) -> Principal | None:
        return self.lookup(token)

    def lookup(self, token: str) -> Principal | None:
        entry = self._by_hash.get(hash_key(token))
        if entry is None:
            return None
        now = self.clock()
        if not entry.secret.valid(now) or entry.key.state(now) != "active":
            return None
        return entry.principal

    def key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def secret_works(self, key_id: str, secret_hash: str) -> bool:
        """Whether the secret hashed to ``secret_hash`` still opens the key ``key_id`` now: False once
        it was rotated away (after its grace period), revoked or expired. Console sessions check it on
        every request, so rotating a key signs out the sessions its old secret opened."""
        entry = self._by_hash.get(secret_hash)
        if entry is None or entry.key.id != key_id:
            return False
        now = self.clock()
        return entry.secret.valid(now) and entry.key.state(now) == "active"

    def principal(self, key_id: str) -> Principal | None:
        """The principal of the key ``key_id`` while it is active; None once revoked, expired or gone.
        For work lmdeck does later on a key's behalf (batch rows), which holds its id, never its secret."""
        key = self._keys.get(key_id)
        if key is None or key.state(self.clock()) != "active":
            return None
        return principal_of(key, self.team(key.team_id))

    def role_of_actor(self, actor: str | None) -> Role | None:
        """The role now held by the key an audit actor names (``key:<id>``), or None."""
        kind, _, key_id = (actor or "").partition(":")
        key = self._keys.get(key_id) if kind == "key" else None
        return key.role if key is not None else None

    def team(self, team_id: str | None) -> Team | None:
        return self._teams.get(team_id) if team_id else None

    def team_name(self, team_id: str | None) -> str | None:
        team = self.team(team_id)
        return team.name if team is not None else None

    def keys_of_team(self, team_id: str | None) -> list[ApiKey]:
        return [k for k in self._keys.values() if team_id is not None and k.team_id == team_id]
