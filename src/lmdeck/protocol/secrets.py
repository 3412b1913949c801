"""How a secret is named without being written: ``{"$env": "NAME"}`` or ``{"$secret": "name"}``.

The shape is shared by the config file, the registry API and the Python client; resolving a
reference to the secret itself is the server's business (:class:`lmdeck.settings.SecretRef`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SecretReference(BaseModel):
    """A reference to a secret: ``{"$env": "NAME"}`` (an environment variable) or ``{"$secret": "name"}``
    (a provider secret kept encrypted in lmdeck's store; see :mod:`lmdeck.policy.secrets`)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    env: str | None = Field(default=None, alias="$env")
    secret: str | None = Field(default=None, alias="$secret")

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                'a key is never written inline: reference it as {"$env": "NAME"} (an environment variable) '
                'or {"$secret": "name"} (stored with PUT /api/secrets/name)'
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SecretReference:
        if (self.env is None) == (self.secret is None):
            raise ValueError('a secret reference is either {"$env": "NAME"} or {"$secret": "name"}')
        return self
