"""Redis, the state replicas share, and what each feature does while it cannot be reached."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmdeck.protocol.headers import check_url
from lmdeck.settings.secrets import SecretRef

#: What a feature does while Redis cannot be reached: ``open`` serves the request on this process's own
#: state (limits, budgets and breakers counted per process, the cache a miss); ``closed`` refuses it
#: with a 503 (``code: shared_state_unavailable``).
RedisFailure = Literal["open", "closed"]


class RedisFailurePolicy(BaseModel):
    """The declared behaviour of each Redis-backed feature while Redis is down (see :data:`RedisFailure`)."""

    model_config = ConfigDict(extra="forbid")

    rate_limits: RedisFailure = Field(default="open", description="open: each process's own buckets apply")
    budgets: RedisFailure = Field(
        default="closed", description="closed: requests that a budget covers get a 503 rather than overspend"
    )
    breakers: RedisFailure = Field(default="open", description="open: each process's own breaker state applies")
    cache: RedisFailure = Field(default="open", description="open: a lookup is a miss and a write is skipped")


class RedisSettings(BaseModel):
    """Redis, shared by every replica: exact rate limits, budget reservations, circuit breakers, the
    response cache, and change notices (pub/sub) so a change made on one replica is seen by all at once.

    Unset ``url``: everything stays in each process (exact for one process; see docs/serving.md).

    >>> RedisSettings.model_validate({"url": "redis://127.0.0.1:6379/0"}).on_unavailable.budgets
    'closed'
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL with the database number, e.g. redis://10.0.0.5:6379/0 "
        "(env LMDECK_REDIS_URL); put no password in it: use `password`",
    )
    password: SecretRef | None = Field(default=None, description='an {"$env": ...} or {"$vault": ...} reference')
    key_prefix: str = Field(
        default="lmdeck:", min_length=1, max_length=64, description="prefix of every key and channel lmdeck uses"
    )
    timeout: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="seconds one Redis command may take (waiting for a pooled connection included) before the "
        "failure policy applies; an overloaded process must not read its own event-loop lag as Redis being down",
    )
    retry_interval: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description="seconds after a failed command during which Redis is not tried again (requests follow "
        "the failure policy at once instead of each waiting out the timeout)",
    )
    pubsub: bool = Field(
        default=True,
        description="publish and follow change notices; off: other replicas see changes at their next poll",
    )
    on_unavailable: RedisFailurePolicy = Field(default_factory=RedisFailurePolicy)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value)
            if not value.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("redis.url is not a redis:// URL: write e.g. redis://127.0.0.1:6379/0")
            if urlsplit(value).password:
                raise ValueError(
                    'redis.url holds a password: take it out and set redis.password: {"$env": "REDIS_PASSWORD"}'
                )
        return value
