"""``client.keys``: create, list, change, rotate and revoke API keys (an admin key is needed).

created = client.keys.create("ci-bot", role="developer", team_id="team_1a2b", expires_in=30 * 86400)
print(created.key)                          # shown this once: store it now
client.keys.rotate(created.id, grace_seconds=3600)
client.keys.revoke(created.id)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from lmdeck.protocol.access import KeyCreated, KeyOut, Role
from lmdeck.sdk.namespace import Namespace


class Keys(Namespace):
    """The keys API (``/api/keys``)."""

    name = "keys"

    def create(
        self,
        name: str,
        *,
        role: Role = "inference",
        team_id: str | None = None,
        user_id: str | None = None,
        expires_in: float | None = None,
        allowed_models: list[str] | None = None,
        allowed_tags: list[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> KeyCreated:
        body = {
            "name": name,
            "role": role,
            "team_id": team_id,
            "user_id": user_id,
            "expires_in": expires_in,
            "allowed_models": allowed_models,
            "allowed_tags": allowed_tags,
            "rpm": rpm,
            "tpm": tpm,
        }
        sent = {k: v for k, v in body.items() if v is not None}
        return KeyCreated.model_validate(self.client.post("/api/keys", json=sent))

    def list(self, *, team_id: str | None = None, include_revoked: bool = True) -> list[KeyOut]:
        found = self.client.get("/api/keys", params={"team_id": team_id, "include_revoked": include_revoked})
        return [KeyOut.model_validate(k) for k in found["data"]]

    def get(self, key_id: str) -> KeyOut:
        return KeyOut.model_validate(self.client.get(f"/api/keys/{quote(key_id, safe='')}"))

    def update(self, key_id: str, **changes: Any) -> KeyOut:
        """Change ``role``, ``name``, ``team_id``, ``user_id``, ``expires_at``, limits or allowed models/tags."""
        return KeyOut.model_validate(self.client.patch(f"/api/keys/{quote(key_id, safe='')}", json=changes))

    def rotate(self, key_id: str, *, grace_seconds: float | None = None) -> KeyCreated:
        body = {"grace_seconds": grace_seconds} if grace_seconds is not None else {}
        return KeyCreated.model_validate(self.client.post(f"/api/keys/{quote(key_id, safe='')}/rotate", json=body))

    def revoke(self, key_id: str) -> KeyOut:
        return KeyOut.model_validate(self.client.post(f"/api/keys/{quote(key_id, safe='')}/revoke"))


NAMESPACE = Keys
