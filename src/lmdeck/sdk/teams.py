"""``client.teams``: teams and their users.

team = client.teams.create("search", rpm=600, allowed_models=["gpt-4o-mini"])
ada = client.teams.add_user(team.id, "Ada", email="ada@example.com")
client.teams.update(team.id, tpm=200_000)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from lmdeck.protocol.access import TeamOut, UserOut
from lmdeck.sdk.namespace import Namespace


class Teams(Namespace):
    """The teams and users API (``/api/teams``, ``/api/users``)."""

    name = "teams"

    def create(
        self,
        name: str,
        *,
        allowed_models: list[str] | None = None,
        allowed_tags: list[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> TeamOut:
        body = {
            "name": name,
            "allowed_models": allowed_models,
            "allowed_tags": allowed_tags,
            "rpm": rpm,
            "tpm": tpm,
            "metadata": metadata,
        }
        sent = {k: v for k, v in body.items() if v is not None}
        return TeamOut.model_validate(self.client.post("/api/teams", json=sent))

    def get(self, team_id_or_name: str) -> TeamOut:
        return TeamOut.model_validate(self.client.get(f"/api/teams/{quote(team_id_or_name, safe='')}"))

    def update(self, team_id: str, **changes: Any) -> TeamOut:
        """Change ``name``, ``rpm``, ``tpm``, ``allowed_models``, ``allowed_tags`` or ``metadata``."""
        return TeamOut.model_validate(self.client.patch(f"/api/teams/{quote(team_id, safe='')}", json=changes))

    def add_user(self, team_id: str | None, name: str, *, email: str | None = None) -> UserOut:
        body = {"name": name, "email": email, "team_id": team_id}
        return UserOut.model_validate(self.client.post("/api/users", json={k: v for k, v in body.items() if v}))

    def users(self, team_id: str | None = None) -> list[UserOut]:
        return [UserOut.model_validate(u) for u in self.client.get("/api/users", params={"team_id": team_id})["data"]]

    # Last in the class: a method named `list` would hide the builtin in the annotations after it.
    def list(self) -> list[TeamOut]:
        return [TeamOut.model_validate(t) for t in self.client.get("/api/teams")["data"]]


NAMESPACE = Teams
