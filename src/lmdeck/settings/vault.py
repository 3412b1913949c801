"""HashiCorp Vault, where ``{"$vault": "path#field"}`` references are read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmdeck.protocol.headers import check_url
from lmdeck.settings.secrets import SecretRef


def _vault_token_default() -> SecretRef:
    return SecretRef.model_validate({"$env": "VAULT_TOKEN"})


class VaultSettings(BaseModel):
    """Where ``{"$vault": "path#field"}`` references are read: a HashiCorp Vault KV v2 mount.

    >>> VaultSettings.model_validate({"address": "https://vault.internal:8200"}).mount
    'secret'
    """

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None, description="Vault's base URL, e.g. https://vault.internal:8200 (env VAULT_ADDR); unset: no Vault"
    )
    token: SecretRef = Field(
        default_factory=_vault_token_default, description='token sent as X-Vault-Token; an {"$env": ...} reference'
    )
    mount: str = Field(default="secret", min_length=1, description="path of the KV version 2 secrets engine")
    namespace: str | None = Field(default=None, description="Vault Enterprise namespace (env VAULT_NAMESPACE)")
    timeout: float = Field(default=5.0, gt=0, le=300, description="seconds for one read from Vault")
    cache_ttl: float = Field(
        default=300.0, ge=0, le=86400, description="seconds a secret read from Vault is used before it is read again"
    )

    @field_validator("token")
    @classmethod
    def _env_token(cls, value: SecretRef) -> SecretRef:
        if value.env is None:
            raise ValueError('vault.token is read from the environment: write {"$env": "VAULT_TOKEN"}')
        return value

    @field_validator("address")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value)
            if not value.startswith(("http://", "https://")):
                raise ValueError(f"vault.address {value!r} is not an http(s) URL: write e.g. https://vault:8200")
        return value

    @field_validator("mount")
    @classmethod
    def _mount(cls, value: str) -> str:
        mount = value.strip("/")
        if not mount:
            raise ValueError("vault.mount names no path: write e.g. secret")
        return mount
