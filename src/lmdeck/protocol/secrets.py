"""How a secret is named without being written: ``{"$env": "NAME"}``, ``{"$secret": "name"}`` or
``{"$vault": "path#field"}``.

The shape is shared by the config file, the registry API and the Python client; resolving a
reference to the secret itself is the server's business (:class:`lmdeck.settings.SecretRef`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SecretReference(BaseModel):
    """A reference to a secret: ``{"$env": "NAME"}`` (an environment variable), ``{"$secret": "name"}``
    (a provider secret kept encrypted in lmdeck's store; see :mod:`lmdeck.policy.secrets`) or
    ``{"$vault": "path#field"}`` (field ``field`` of the HashiCorp Vault KV v2 secret at ``path``;
    see :mod:`lmdeck.policy.vault`)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    env: str | None = Field(default=None, alias="$env")
    secret: str | None = Field(default=None, alias="$secret")
    vault: str | None = Field(default=None, alias="$vault")

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                'a key is never written inline: reference it as {"$env": "NAME"} (an environment variable) '
                'or {"$secret": "name"} (stored with PUT /api/secrets/name) or {"$vault": "path#field"} (Vault KV v2)'
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SecretReference:
        given = [source for source in (self.env, self.secret, self.vault) if source is not None]
        if len(given) != 1:
            raise ValueError(
                'a secret reference is one of {"$env": "NAME"}, {"$secret": "name"} or {"$vault": "path#field"}'
            )
        if self.vault is not None:
            path, sep, field = self.vault.partition("#")
            if not sep or not path.strip("/") or not field:
                raise ValueError(
                    f'{{"$vault": {self.vault!r}}} names no field: write {{"$vault": "path#field"}}, '
                    'e.g. {"$vault": "lmdeck/openai#api_key"}'
                )
        return self
