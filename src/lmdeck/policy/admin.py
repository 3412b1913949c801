"""Admin actions on teams, users, keys and provider secrets: each one stored, audited, and live at once.

    admin = AccessAdmin(identities, keys, audit, secrets, rotation_grace=3600)
    created, secret = await admin.create_key(principal, KeyCreate(name="ci", role="developer"))
    await admin.rotate_key(principal, created.id, grace_seconds=600)
    await admin.revoke_key(principal, created.id)

Store work runs in a worker thread. After a change the key cache is reloaded
before the call returns, so the next request in this process already sees it;
other processes see it within ``policy.refresh_interval``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy.exc import IntegrityError

from lmdeck.changes import ChangeNotices
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.audit import AuditLog
from lmdeck.policy.identities import ApiKey, Team, User
from lmdeck.policy.identity_store import AmbiguousName, IdentityStore, LastAdminKey, NotFound
from lmdeck.policy.key_cache import KeyCache
from lmdeck.policy.secrets import SecretNotFound, SecretStore
from lmdeck.protocol import APIError
from lmdeck.protocol.access import KeyCreate, KeyUpdate, TeamCreate, TeamUpdate, UserCreate

T = TypeVar("T")


def not_found(exc: LookupError) -> APIError:
    """A 404 carrying the lookup's own message (``str(KeyError(m))`` would wrap ``m`` in quotes)."""
    message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return APIError(404, message, type="not_found_error", code="not_found")


async def off_loop(fn: Callable[[], T]) -> T:
    """Run blocking store work in a worker thread, turning lookups that fail into 404s and a change
    that would leave no admin key into a 409."""
    try:
        return await anyio.to_thread.run_sync(fn)
    except (NotFound, SecretNotFound) as exc:
        raise not_found(exc) from None
    except LastAdminKey as exc:
        raise APIError(409, str(exc), code="last_admin_key") from None


def _changes(body: KeyUpdate | TeamUpdate) -> dict[str, Any]:
    return {name: getattr(body, name) for name in body.model_fields_set}


class AccessAdmin:
    """The serving logic behind ``/api/keys``, ``/api/teams``, ``/api/users`` and ``/api/secrets``."""

    def __init__(
        self,
        identities: IdentityStore,
        keys: KeyCache,
        audit: AuditLog,
        secrets: SecretStore,
        *,
        rotation_grace: float = 3600.0,
    ) -> None:
        self.identities = identities
        self.keys = keys
        self.audit = audit
        self.secrets = secrets
        self.rotation_grace = rotation_grace
        #: Told after each change (topic ``policy``) so other processes reload keys at once.
        self.changes = ChangeNotices()

    async def _changed(self, actor: Principal, action: str, target: str, before: Any, after: Any) -> None:
        await self.audit.record(actor.actor, action, target, before=before, after=after)
        await self.keys.reload()
        self.changes.publish("policy")

    # -- teams and users -----------------------------------------------------

    async def create_team(self, actor: Principal, body: TeamCreate) -> Team:
        def create() -> Team:
            return self.identities.create_team(
                body.name,
                allowed_models=body.allowed_models,
                allowed_tags=body.allowed_tags,
                rpm=body.rpm,
                tpm=body.tpm,
                metadata=body.metadata,
            )

        try:
            team = await off_loop(create)
        except IntegrityError:
            raise APIError(409, f"a team named {body.name!r} exists already", code="conflict", param="name") from None
        await self._changed(actor, "team.created", f"team:{team.id}", None, team.to_dict())
        return team

    async def update_team(self, actor: Principal, team_id: str, body: TeamUpdate) -> Team:
        before = await off_loop(lambda: self.identities.team(team_id))
        try:
            team = await off_loop(lambda: self.identities.update_team(before.id, _changes(body)))
        except IntegrityError:
            raise APIError(409, f"a team named {body.name!r} exists already", code="conflict", param="name") from None
        await self._changed(actor, "team.updated", f"team:{team.id}", before.to_dict(), team.to_dict())
        return team

    async def team(self, team_id: str) -> Team:
        return await off_loop(lambda: self.identities.team(team_id))

    async def teams(self) -> list[Team]:
        return await off_loop(self.identities.teams)

    async def create_user(self, actor: Principal, body: UserCreate) -> User:
        # A team may be named by its name: the user is stored with the team's id.
        team_id = await self._must_exist("team", body.team_id) if body.team_id is not None else None
        user = await off_loop(lambda: self.identities.create_user(body.name, email=body.email, team_id=team_id))
        await self._changed(actor, "user.created", f"user:{user.id}", None, user.to_dict())
        return user

    async def users(self, team_id: str | None = None) -> list[User]:
        return await off_loop(lambda: self.identities.users(team_id=team_id))

    async def _must_exist(self, kind: str, ident: str) -> str:
        lookups: dict[str, Callable[[], Any]] = {
            "team": lambda: self.identities.team(ident).id,
            "user": lambda: self.identities.user(ident).id,
        }
        try:
            return str(await anyio.to_thread.run_sync(lookups[kind]))
        except AmbiguousName as exc:
            raise APIError(400, str(exc), param=f"{kind}_id", code="invalid_value") from None
        except NotFound:
            raise APIError(
                400,
                f"no {kind} {ident!r}: create it first (lmdeck teams ...)",
                param=f"{kind}_id",
                code="invalid_value",
            ) from None

    # -- keys ----------------------------------------------------------------

    async def create_key(self, actor: Principal, body: KeyCreate) -> tuple[ApiKey, str]:
        now = time.time()
        expires_at = body.expires_at if body.expires_at is not None else None
        if body.expires_in is not None:
            expires_at = now + body.expires_in
        if expires_at is not None and expires_at <= now:
            raise APIError(
                400, "expires_at is in the past: give a future time", param="expires_at", code="invalid_value"
            )
        team_id = await self._must_exist("team", body.team_id) if body.team_id is not None else None
        user_id = await self._must_exist("user", body.user_id) if body.user_id is not None else None
        if user_id and team_id is None:
            team_id = (await off_loop(lambda: self.identities.user(user_id))).team_id

        def create() -> tuple[ApiKey, str]:
            return self.identities.create_key(
                body.name,
                body.role,
                team_id=team_id,
                user_id=user_id,
                created_by=actor.key_id,
                expires_at=expires_at,
                allowed_models=body.allowed_models,
                allowed_tags=body.allowed_tags,
                rpm=body.rpm,
                tpm=body.tpm,
            )

        key, secret = await off_loop(create)
        await self._changed(actor, "key.created", f"key:{key.id}", None, key.to_dict())
        return key, secret

    async def update_key(self, actor: Principal, key_id: str, body: KeyUpdate) -> ApiKey:
        before = await off_loop(lambda: self.identities.key(key_id))
        changes = _changes(body)
        # null clears the reference; any other value must name what exists ("" names nothing).
        if changes.get("team_id") is not None:
            changes["team_id"] = await self._must_exist("team", changes["team_id"])
        if changes.get("user_id") is not None:
            changes["user_id"] = await self._must_exist("user", changes["user_id"])
        key = await off_loop(lambda: self.identities.update_key(key_id, changes))
        action = "key.role_changed" if key.role != before.role else "key.updated"
        await self._changed(actor, action, f"key:{key.id}", before.to_dict(), key.to_dict())
        return key

    async def rotate_key(self, actor: Principal, key_id: str, grace_seconds: float | None = None) -> tuple[ApiKey, str]:
        grace = self.rotation_grace if grace_seconds is None else grace_seconds
        before = await off_loop(lambda: self.identities.key(key_id))
        if before.state(time.time()) == "revoked":
            raise APIError(409, f"key {key_id!r} is revoked: create a new key instead", code="conflict")
        key, secret = await off_loop(
            lambda: self.identities.rotate_key(key_id, grace_seconds=grace, now=self.keys.clock())
        )
        after = key.to_dict() | {"grace_seconds": grace}
        await self._changed(actor, "key.rotated", f"key:{key.id}", before.to_dict(), after)
        return key, secret

    async def revoke_key(self, actor: Principal, key_id: str) -> ApiKey:
        before = await off_loop(lambda: self.identities.key(key_id))
        if before.revoked_at is not None:
            # Revoking a revoked key changes nothing, so it leaves no second audit entry.
            return before
        key = await off_loop(lambda: self.identities.revoke_key(key_id, now=self.keys.clock()))
        await self._changed(actor, "key.revoked", f"key:{key.id}", before.to_dict(), key.to_dict())
        return key

    async def key(self, key_id: str) -> ApiKey:
        return await off_loop(lambda: self.identities.key(key_id))

    async def list_keys(self, team_id: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
        return await off_loop(lambda: self.identities.keys(team_id=team_id, include_revoked=include_revoked))

    # -- provider secrets ----------------------------------------------------

    async def put_secret(self, actor: Principal, name: str, value: str) -> dict[str, Any]:
        created = await off_loop(lambda: self.secrets.put(name, value))
        # The audit entry names the secret, never its value.
        await self.audit.record(actor.actor, "secret.created" if created else "secret.replaced", f"secret:{name}")
        return next(s for s in await self.secret_names() if s["name"] == name)

    async def delete_secret(self, actor: Principal, name: str) -> None:
        await off_loop(lambda: self.secrets.delete(name))
        await self.audit.record(actor.actor, "secret.deleted", f"secret:{name}")

    async def secret_names(self) -> list[dict[str, Any]]:
        return await off_loop(self.secrets.names)
