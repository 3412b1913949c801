"""``client.models``: the model registry.

client.models.create_version("support-bot", provider="openai", model="gpt-4o-mini",
                             metrics={"accuracy": 0.91}, lineage={"dataset": "tickets@3"})
client.models.alias("support-bot", "production", 2, reason="beats v1 on tickets@3")
client.models.rollback("support-bot", "production", reason="error rate up")
for move in client.models.history("support-bot", alias="production"):
    print(move["at"], move["actor"], move["from_version"], "->", move["to_version"], move["reason"])
"""

from __future__ import annotations

from typing import Any

from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.sdk.pointers import PointerNamespace


class Models(PointerNamespace):
    """Registered models, versions, aliases and deployment history (``/api/registry/models``).

    The alias calls are :class:`~lmdeck.sdk.pointers.PointerNamespace`'s, in the words of models.
    """

    name = "models"
    collection = "models"
    pointer_word = "alias"
    pointer_plural = "aliases"

    def get(self, name: str) -> dict[str, Any]:
        """The model with its versions and aliases."""
        return self._entry(name)

    def version(self, name: str, version: int) -> dict[str, Any]:
        found: dict[str, Any] = self.client.get(self._path(name, f"/versions/{version}"))
        return found

    def create_version(self, name: str, spec: ModelVersionSpec | None = None, **fields: Any) -> dict[str, Any]:
        """Add an immutable version: a :class:`ModelVersionSpec` or its fields."""
        body = (spec or ModelVersionSpec.model_validate(fields)).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        created: dict[str, Any] = self.client.post(self._path(name, "/versions"), json=body)
        return created

    def alias(
        self, name: str, alias: str, version: int, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Point ``name@alias`` at ``version``; live at once on the gateway.

        With ``expected_version`` the move happens only if the alias still points there; otherwise
        :class:`~lmdeck.sdk.errors.LMDeckError` with status 409 and code ``version_conflict``.
        """
        return self.move(name, alias, version, reason=reason, expected_version=expected_version)

    def unalias(
        self, name: str, alias: str, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        return self.remove(name, alias, reason=reason, expected_version=expected_version)

    def rollback(
        self, name: str, alias: str, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Move ``name@alias`` back to the version it pointed at before its last move."""
        return self.move_back(name, alias, reason=reason, expected_version=expected_version)

    def history(self, name: str, alias: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The deployment history, newest first."""
        return self.moves(name, alias, limit)


NAMESPACE = Models
