"""Who may call lmdeck: teams, users and API keys, as plain records.

    team = Team(id="team_1", name="search", created_at=0.0, rpm=600)
    key = ApiKey(id="key_1", name="ci", role="developer", created_at=0.0, team_id=team.id)
    key.state(now=time.time())    # 'active', 'expired' or 'revoked'

A key is an identity (role, team, user, limits, allowed models and tags) that
holds one or more *secrets*: the key strings callers present. Rotation adds a
new secret and gives the old ones a grace period, so the key's id, and with it
its spend and budgets, survives a rotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lmdeck.protocol.access import Role

KeyState = Literal["active", "expired", "revoked"]


def _listed(values: frozenset[str] | None) -> list[str] | None:
    return sorted(values) if values is not None else None


@dataclass(frozen=True)
class Team:
    """A group of users and keys sharing limits, budgets and allowed models."""

    id: str
    name: str
    created_at: float
    allowed_models: frozenset[str] | None = None
    allowed_tags: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "allowed_models": _listed(self.allowed_models),
            "allowed_tags": _listed(self.allowed_tags),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class User:
    """A person; keys may be issued to a user, whose requests are then attributed to them."""

    id: str
    name: str
    created_at: float
    email: str | None = None
    team_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "team_id": self.team_id,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class ApiKey:
    """An API key's identity and rules; never its secret."""

    id: str
    name: str
    role: Role
    created_at: float
    team_id: str | None = None
    user_id: str | None = None
    created_by: str | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    allowed_models: frozenset[str] | None = None
    allowed_tags: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    prefix: str | None = None

    def state(self, now: float) -> KeyState:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "prefix": self.prefix,
            "team_id": self.team_id,
            "user_id": self.user_id,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "allowed_models": _listed(self.allowed_models),
            "allowed_tags": _listed(self.allowed_tags),
            "rpm": self.rpm,
            "tpm": self.tpm,
        }
        if now is not None:
            out["state"] = self.state(now)
        return out


@dataclass(frozen=True)
class KeySecret:
    """One presentable secret of a key: its hash, its visible prefix, and when it stops working."""

    hash: str
    key_id: str
    prefix: str
    created_at: float
    expires_at: float | None = None

    def valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at
