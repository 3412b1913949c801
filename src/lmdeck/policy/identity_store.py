"""Teams, users and API keys in the store (blocking calls: run them off the event loop).

    store = IdentityStore(db)
    team = store.create_team("search", rpm=600)
    key, secret = store.create_key("ci", "developer", team_id=team.id)
    store.rotate_key(key.id, grace_seconds=3600)   # -> (key, new secret); the old one works for an hour
    store.revoke_key(key.id)

The request path never calls this: :class:`lmdeck.policy.key_cache.KeyCache`
serves lookups from memory and reloads from :meth:`IdentityStore.snapshot`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

import orjson
from sqlalchemy import Connection, text

from lmdeck.db import Database
from lmdeck.db.locks import hold
from lmdeck.policy.identities import ApiKey, KeySecret, Team, User
from lmdeck.policy.keys import hash_key, new_id, new_key, visible_prefix
from lmdeck.protocol.access import Role


class NotFound(LookupError):
    """No such team, user or key."""


class LastAdminKey(ValueError):
    """A change would leave lmdeck without a working admin key; the message names the key and why."""


#: The lock every change that can take an admin key away holds, so two of them never both pass the check.
ADMIN_KEYS_LOCK = "policy.admin_keys"


def keep_an_admin(admins: Iterable[ApiKey], before: ApiKey, after: ApiKey, now: float) -> None:
    """Refuse ``before`` becoming ``after`` if it takes away the last active admin key, or the last
    admin key without an expiry (:class:`LastAdminKey`). ``admins`` are the keys whose role is admin."""
    keys = {k.id: k for k in admins}
    keys[before.id] = before
    changed = {**keys, after.id: after}

    def active(found: Iterable[ApiKey]) -> list[ApiKey]:
        # Any revocation counts, whatever its time: a racing one may carry a clock reading after ``now``.
        alive = (k for k in found if k.revoked_at is None and (k.expires_at is None or k.expires_at > now))
        return [k for k in alive if k.role == "admin"]

    if after.revoked_at is not None and before.revoked_at is None:
        doing = "revoking it"
    elif after.role != before.role:
        doing = f"making it a {after.role} key"
    else:
        doing = "giving it an expiry"
    if active(keys.values()) and not active(changed.values()):
        raise LastAdminKey(
            f"key {before.id!r} is the last active admin key: {doing} would leave no key that can administer "
            "lmdeck; create another admin key first (lmdeck keys create --role admin)"
        )
    lasting_before = [k for k in active(keys.values()) if k.expires_at is None]
    lasting_after = [k for k in active(changed.values()) if k.expires_at is None]
    if lasting_before and not lasting_after:
        raise LastAdminKey(
            f"key {before.id!r} is the last admin key without an expiry: {doing} would leave lmdeck without an "
            "admin once the other admin keys expire; create another admin key without an expiry first"
        )


class AmbiguousName(LookupError):
    """Several users share the name that was given where an id or a unique name was expected."""


def _dump_set(values: Iterable[str] | None) -> str | None:
    return orjson.dumps(sorted(set(values))).decode() if values is not None else None


def _load_set(raw: str | None) -> frozenset[str] | None:
    return frozenset(orjson.loads(raw)) if raw is not None else None


def _opt_float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _opt_int(value: Any) -> int | None:
    return int(value) if value is not None else None


_TEAM_COLUMNS = "id, name, created_at, allowed_models, allowed_tags, rpm, tpm, metadata"
_KEY_COLUMNS = (
    "id, name, role, team_id, user_id, created_at, created_by, expires_at, revoked_at, "
    "allowed_models, allowed_tags, rpm, tpm"
)


def _team(row: Any) -> Team:
    return Team(
        id=row[0],
        name=row[1],
        created_at=float(row[2]),
        allowed_models=_load_set(row[3]),
        allowed_tags=_load_set(row[4]),
        rpm=_opt_int(row[5]),
        tpm=_opt_int(row[6]),
        metadata=orjson.loads(row[7]) if row[7] else {},
    )


def _key(row: Any, prefix: str | None = None) -> ApiKey:
    return ApiKey(
        id=row[0],
        name=row[1],
        role=cast(Role, row[2]),
        team_id=row[3],
        user_id=row[4],
        created_at=float(row[5]),
        created_by=row[6],
        expires_at=_opt_float(row[7]),
        revoked_at=_opt_float(row[8]),
        allowed_models=_load_set(row[9]),
        allowed_tags=_load_set(row[10]),
        rpm=_opt_int(row[11]),
        tpm=_opt_int(row[12]),
        prefix=prefix,
    )


def _secret(row: Any) -> KeySecret:
    return KeySecret(hash=row[0], key_id=row[1], prefix=row[2], created_at=float(row[3]), expires_at=_opt_float(row[4]))


@dataclass(frozen=True)
class Snapshot:
    """Everything the key cache needs, read in one transaction."""

    teams: list[Team]
    keys: list[ApiKey]
    secrets: list[KeySecret]


#: Columns an update may change, with how each value is stored.
_SET_COLUMNS = {"allowed_models", "allowed_tags"}
TEAM_FIELDS = frozenset({"name", "allowed_models", "allowed_tags", "rpm", "tpm", "metadata"})
KEY_FIELDS = frozenset(
    {"name", "role", "team_id", "user_id", "expires_at", "allowed_models", "allowed_tags", "rpm", "tpm"}
)


def _stored(column: str, value: Any) -> Any:
    if column in _SET_COLUMNS:
        return _dump_set(value)
    if column == "metadata":
        return orjson.dumps(value or {}).decode()
    return value


class IdentityStore:
    """SQL access to teams, users, keys and key secrets."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- teams ---------------------------------------------------------------

    def create_team(
        self,
        name: str,
        *,
        allowed_models: Iterable[str] | None = None,
        allowed_tags: Iterable[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        team_id: str | None = None,
    ) -> Team:
        values = {
            "id": team_id or new_id("team"),
            "name": name,
            "created_at": time.time(),
            "allowed_models": _dump_set(allowed_models),
            "allowed_tags": _dump_set(allowed_tags),
            "rpm": rpm,
            "tpm": tpm,
            "metadata": orjson.dumps(dict(metadata or {})).decode(),
        }
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO teams ({_TEAM_COLUMNS}) VALUES "
                    "(:id, :name, :created_at, :allowed_models, :allowed_tags, :rpm, :tpm, :metadata)"
                ),
                values,
            )
        return self.team(str(values["id"]))

    def team(self, team_id_or_name: str) -> Team:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_TEAM_COLUMNS} FROM teams WHERE id = :v OR name = :v"), {"v": team_id_or_name}
            ).first()
        if row is None:
            raise NotFound(f"no team {team_id_or_name!r}")
        return _team(row)

    def teams(self) -> list[Team]:
        with self.db.engine.connect() as conn:
            return [_team(r) for r in conn.execute(text(f"SELECT {_TEAM_COLUMNS} FROM teams ORDER BY name"))]

    def update_team(self, team_id: str, changes: Mapping[str, Any]) -> Team:
        self._update("teams", team_id, changes, TEAM_FIELDS)
        return self.team(team_id)

    # -- users ---------------------------------------------------------------

    def create_user(self, name: str, *, email: str | None = None, team_id: str | None = None) -> User:
        user = User(id=new_id("user"), name=name, email=email, team_id=team_id, created_at=time.time())
        with self.db.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO users (id, name, email, team_id, created_at) VALUES (:id, :n, :e, :t, :c)"),
                {"id": user.id, "n": name, "e": email, "t": team_id, "c": user.created_at},
            )
        return user

    def user(self, user_id_or_name: str) -> User:
        """The user with this id, else the one user with this name.

        Raises :class:`NotFound` when there is none, and :class:`AmbiguousName` when several users
        (of different teams) share the name.
        """
        users = self.users(user_id=user_id_or_name)
        if users:
            return users[0]
        named = [u for u in self.users() if u.name == user_id_or_name]
        if len(named) > 1:
            raise AmbiguousName(f"{len(named)} users are named {user_id_or_name!r}: give the user's id")
        if not named:
            raise NotFound(f"no user {user_id_or_name!r}")
        return named[0]

    def users(self, *, team_id: str | None = None, user_id: str | None = None) -> list[User]:
        sql, params = "SELECT id, name, email, team_id, created_at FROM users WHERE 1 = 1", {}
        if team_id is not None:
            sql, params["t"] = sql + " AND team_id = :t", team_id
        if user_id is not None:
            sql, params["u"] = sql + " AND id = :u", user_id
        with self.db.engine.connect() as conn:
            rows = conn.execute(text(sql + " ORDER BY name"), params)
            return [User(id=r[0], name=r[1], email=r[2], team_id=r[3], created_at=float(r[4])) for r in rows]

    # -- keys ----------------------------------------------------------------

    def create_key(
        self,
        name: str,
        role: Role,
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        created_by: str | None = None,
        expires_at: float | None = None,
        allowed_models: Iterable[str] | None = None,
        allowed_tags: Iterable[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        key_id: str | None = None,
        secret: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it with its secret, which is never readable again."""
        secret = secret or new_key()
        now = time.time()
        values = {
            "id": key_id or new_id("key"),
            "name": name,
            "role": role,
            "team_id": team_id,
            "user_id": user_id,
            "created_at": now,
            "created_by": created_by,
            "expires_at": expires_at,
            "revoked_at": None,
            "allowed_models": _dump_set(allowed_models),
            "allowed_tags": _dump_set(allowed_tags),
            "rpm": rpm,
            "tpm": tpm,
        }
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (:id, :name, :role, :team_id, :user_id, "
                    ":created_at, :created_by, :expires_at, :revoked_at, :allowed_models, :allowed_tags, :rpm, :tpm)"
                ),
                values,
            )
            self._add_secret(conn, str(values["id"]), secret, now)
        return self.key(str(values["id"])), secret

    @staticmethod
    def _add_secret(conn: Connection, key_id: str, secret: str, now: float) -> None:
        conn.execute(
            text(
                "INSERT INTO api_key_secrets (hash, key_id, prefix, created_at, expires_at) "
                "VALUES (:h, :k, :p, :c, NULL)"
            ),
            {"h": hash_key(secret), "k": key_id, "p": visible_prefix(secret), "c": now},
        )

    @staticmethod
    def _key_in(conn: Connection, key_id: str) -> ApiKey:
        row = conn.execute(text(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = :id"), {"id": key_id}).first()
        if row is None:
            raise NotFound(f"no key {key_id!r}")
        return _key(row)

    @staticmethod
    def _admins_in(conn: Connection) -> list[ApiKey]:
        return [_key(r) for r in conn.execute(text(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE role = 'admin'"))]

    def key(self, key_id: str) -> ApiKey:
        with self.db.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = :id"), {"id": key_id}).first()
            if row is None:
                raise NotFound(f"no key {key_id!r}")
            prefix = conn.execute(
                text("SELECT prefix FROM api_key_secrets WHERE key_id = :id ORDER BY created_at DESC LIMIT 1"),
                {"id": key_id},
            ).scalar()
        return _key(row, prefix)

    def keys(self, *, team_id: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
        snapshot = self.snapshot()
        newest: dict[str, KeySecret] = {}
        for s in snapshot.secrets:
            if s.key_id not in newest or s.created_at >= newest[s.key_id].created_at:
                newest[s.key_id] = s
        out = []
        for key in snapshot.keys:
            if team_id is not None and key.team_id != team_id:
                continue
            if not include_revoked and key.revoked_at is not None:
                continue
            found = newest.get(key.id)
            out.append(_with_prefix(key, found.prefix if found else None))
        return out

    def secrets_of(self, key_id: str) -> list[KeySecret]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT hash, key_id, prefix, created_at, expires_at FROM api_key_secrets "
                    "WHERE key_id = :k ORDER BY created_at"
                ),
                {"k": key_id},
            )
            return [_secret(r) for r in rows]

    def rotate_key(self, key_id: str, *, grace_seconds: float, now: float | None = None) -> tuple[ApiKey, str]:
        """Add a new secret; the current ones keep working for ``grace_seconds`` more."""
        now = time.time() if now is None else now
        self.key(key_id)
        secret = new_key()
        until = now + max(grace_seconds, 0.0)
        with self.db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE api_key_secrets SET expires_at = :u "
                    "WHERE key_id = :k AND (expires_at IS NULL OR expires_at > :u)"
                ),
                {"u": until, "k": key_id},
            )
            self._add_secret(conn, key_id, secret, now)
        return self.key(key_id), secret

    def revoke_key(self, key_id: str, *, now: float | None = None) -> ApiKey:
        """Revoke a key; :class:`LastAdminKey` if it is the last active admin key (checked under a lock)."""
        now = time.time() if now is None else now
        with self.db.engine.begin() as conn:
            hold(conn, ADMIN_KEYS_LOCK)
            before = self._key_in(conn, key_id)
            if before.role == "admin" and before.revoked_at is None:
                keep_an_admin(self._admins_in(conn), before, replace(before, revoked_at=now), now)
            conn.execute(
                text("UPDATE api_keys SET revoked_at = :t WHERE id = :k AND revoked_at IS NULL"),
                {"t": now, "k": key_id},
            )
        return self.key(key_id)

    def update_key(self, key_id: str, changes: Mapping[str, Any], *, now: float | None = None) -> ApiKey:
        """Change a key; a change of role or expiry that would leave no admin key is :class:`LastAdminKey`."""
        if not {"role", "expires_at"} & changes.keys():
            self._update("api_keys", key_id, changes, KEY_FIELDS)
            return self.key(key_id)
        now = time.time() if now is None else now
        with self.db.engine.begin() as conn:
            hold(conn, ADMIN_KEYS_LOCK)
            before = self._key_in(conn, key_id)
            after = replace(before, **{k: changes[k] for k in ("role", "expires_at") if k in changes})
            if before.role == "admin":
                keep_an_admin(self._admins_in(conn), before, after, now)
            self._update_in(conn, "api_keys", key_id, changes, KEY_FIELDS)
        return self.key(key_id)

    def replace_secret(self, key_id: str, secret: str) -> None:
        """Make ``secret`` the key's only secret (the bootstrap admin key taken from the environment)."""
        with self.db.engine.begin() as conn:
            conn.execute(text("DELETE FROM api_key_secrets WHERE key_id = :k"), {"k": key_id})
            self._add_secret(conn, key_id, secret, time.time())

    def replace_secret_hash(self, key_id: str, digest: str, prefix: str) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(text("DELETE FROM api_key_secrets WHERE key_id = :k"), {"k": key_id})
            conn.execute(
                text(
                    "INSERT INTO api_key_secrets (hash, key_id, prefix, created_at, expires_at) "
                    "VALUES (:h, :k, :p, :c, NULL)"
                ),
                {"h": digest, "k": key_id, "p": prefix, "c": time.time()},
            )

    # -- shared --------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self.db.engine.connect() as conn:
            teams = [_team(r) for r in conn.execute(text(f"SELECT {_TEAM_COLUMNS} FROM teams"))]
            keys = [_key(r) for r in conn.execute(text(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at"))]
            secrets = [
                _secret(r)
                for r in conn.execute(text("SELECT hash, key_id, prefix, created_at, expires_at FROM api_key_secrets"))
            ]
        return Snapshot(teams, keys, secrets)

    def _update(self, table: str, row_id: str, changes: Mapping[str, Any], allowed: frozenset[str]) -> None:
        with self.db.engine.begin() as conn:
            self._update_in(conn, table, row_id, changes, allowed)

    @staticmethod
    def _update_in(
        conn: Connection, table: str, row_id: str, changes: Mapping[str, Any], allowed: frozenset[str]
    ) -> None:
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} of {table}")
        if not changes:
            return
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        params = {column: _stored(column, value) for column, value in changes.items()} | {"_id": row_id}
        updated = conn.execute(text(f"UPDATE {table} SET {assignments} WHERE id = :_id"), params)
        if updated.rowcount == 0:
            raise NotFound(f"no {table.rstrip('s').replace('api_key', 'key')} {row_id!r}")


def _with_prefix(key: ApiKey, prefix: str | None) -> ApiKey:
    return replace(key, prefix=prefix)
