"""Access control and cost governance: rate limits, concurrency, prices (:mod:`lmdeck.policy`)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class ModelPrice(BaseModel):
    """What an upstream model costs, in US dollars per 1M tokens (at most 6 decimals: read exactly).

    ``cached_input`` is a cache read (OpenAI's ``cached_tokens``, Anthropic's
    ``cache_read_input_tokens``); ``cache_write`` and ``cache_write_1h`` are Anthropic's cache
    writes (``cache_creation_input_tokens``) for the 5-minute and the 1-hour cache.
    """

    model_config = ConfigDict(extra="forbid")

    input: Decimal = Field(ge=0, decimal_places=6)
    output: Decimal = Field(ge=0, decimal_places=6)
    cached_input: Decimal | None = Field(
        default=None, ge=0, decimal_places=6, description="a cache read; default: the input price"
    )
    cache_write: Decimal | None = Field(
        default=None, ge=0, decimal_places=6, description="a 5-minute cache write; default: the input price"
    )
    cache_write_1h: Decimal | None = Field(
        default=None, ge=0, decimal_places=6, description="a 1-hour cache write; default: the 5-minute write price"
    )


class RateLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="tokens (prompt + max_tokens) per minute")


class ConcurrencySettings(BaseModel):
    """How many requests one key, and one team, may have in flight at once (see docs/access.md).

    A stream counts as in flight and as an open stream until it ends. Beyond a limit the request
    is answered 429 at once. The counts are per gateway process.
    """

    model_config = ConfigDict(extra="forbid")

    key_in_flight: int = Field(default=64, ge=1, description="requests one key may have in flight, streams included")
    key_streams: int = Field(default=32, ge=1, description="streams one key may have open")
    team_in_flight: int = Field(default=256, ge=1, description="requests one team's keys may have in flight together")
    team_streams: int = Field(default=128, ge=1, description="streams one team's keys may have open together")


class PolicySettings(BaseModel):
    """Access control and cost governance: limits, prices and how fast changes spread."""

    model_config = ConfigDict(extra="forbid")

    refresh_interval: float = Field(
        default=5.0, gt=0, description="seconds between reloads of keys, teams and budgets changed by other processes"
    )
    rotation_grace: float = Field(default=3600.0, ge=0, description="seconds an old key keeps working after rotation")
    soft_limit: float = Field(default=0.8, gt=0, le=1, description="share of a budget that raises an alert")
    assumed_max_tokens: int = Field(
        default=4096, ge=1, description="output tokens reserved for a request that sets no max_tokens"
    )
    key_limits: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="limits of a key that sets none"
    )
    route_limits: dict[str, RateLimitSettings] = Field(default_factory=dict, description="limits per route")
    concurrency: ConcurrencySettings = Field(
        default_factory=ConcurrencySettings, description="requests and streams in flight per key and per team"
    )
    pricing: dict[str, ModelPrice] = Field(
        default_factory=dict, description="prices per upstream model, over the built-in table"
    )
