"""How upstream calls are made, whatever the route: retries, circuit breakers, the hosts calls
may go to (egress) and the provider credentials an admin defines."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmdeck.settings.secrets import SecretRef, not_own_secret


class BreakerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    reset_timeout: float = Field(default=30.0, gt=0, description="seconds open before a half-open probe")
    half_open_max: int = Field(default=1, ge=1)


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backoff_base: float = Field(default=0.25, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    max_retry_after: float = Field(default=30.0, ge=0, description="longest Retry-After honoured, seconds")


class EgressSettings(BaseModel):
    """Where upstream calls may go (see :mod:`lmdeck.providers.egress`).

    A URL that a non-admin writes (a model version's ``base_url``) must name a host of the
    admin's configuration, an ``allow`` entry or, with ``allow_loopback``, this machine.
    Link-local and cloud-metadata addresses are refused in every role unless ``allow``
    names them; every connection is checked again against the address it goes to.
    """

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(
        default_factory=list,
        description="hosts (api.example.com), subdomain wildcards (*.example.com), addresses and CIDRs (10.0.0.0/8)",
    )
    schemes: list[Literal["https", "http"]] = Field(
        default=["https", "http"], min_length=1, description="URL schemes upstreams may use"
    )
    allow_loopback: bool = Field(default=True, description="let upstreams be on this machine (development)")


class CredentialConfig(BaseModel):
    """A provider credential the admin defines and the gateway attaches to the calls that name it.

    credentials:
      openai-team-a:
        api_key: {"$secret": "openai-team-a"}
        hosts: [api.openai.com]
        teams: [search]          # team names or ids
    """

    model_config = ConfigDict(extra="forbid")

    api_key: SecretRef
    hosts: list[str] = Field(min_length=1, description="the only hosts it is sent to")
    teams: list[str] = Field(
        default_factory=list,
        description="teams (names or ids) whose versions may name it; '*' for every team; empty: admins only",
    )

    @field_validator("api_key")
    @classmethod
    def _not_own_secret(cls, value: SecretRef | None) -> SecretRef | None:
        return not_own_secret(value)
