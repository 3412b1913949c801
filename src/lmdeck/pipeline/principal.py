"""Who is calling: the identity an API key resolves to."""

from __future__ import annotations

from dataclasses import dataclass, field

from lmdeck.protocol.access import Role

#: Where the route guard (lmdeck.app.boundary) and the inference serving leave the principal they
#: authenticated, in ``request.state``.
PRINCIPAL_STATE = "authenticated_principal"
#: Roles ordered by what they may do; a role may do what every role after it may.
ROLE_ORDER: tuple[Role, ...] = ("admin", "developer", "viewer", "inference")


@dataclass(frozen=True)
class Principal:
    """The caller behind a request.

    >>> Principal(key_id="k1", role="admin").at_least("developer")
    True
    """

    key_id: str
    role: Role
    team_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    allowed_models: frozenset[str] | None = None
    allowed_tags: frozenset[str] | None = None
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def at_least(self, role: Role) -> bool:
        if self.role == "inference":
            return role == "inference"
        return ROLE_ORDER.index(self.role) <= ROLE_ORDER.index(role)

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def may_tag(self, tags: list[str]) -> list[str]:
        """The tags among ``tags`` this caller may not set (empty when all are allowed)."""
        if self.allowed_tags is None:
            return []
        return [t for t in tags if t not in self.allowed_tags]

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"key:{self.key_id}"
