"""The response cache: the gateway's defaults and a route's own block, exact and semantic (docs/caching.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SemanticCacheConfig(BaseModel):
    """The semantic cache of a route (see docs/caching.md): a request whose user text means the same
    as a cached one's, in the same shape (tools, response_format, system prompt), gets its answer."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    threshold: float = Field(default=0.89, gt=0, le=1, description="least cosine similarity of a match")
    verify_threshold: float | None = Field(
        default=None, gt=0, le=1, description="a stricter similarity a candidate must pass again (None: no check)"
    )
    verify_terms: bool = Field(
        default=True,
        description="a match must use the same numbers, negations and content words (docs/caching.md)",
    )


class CacheConfig(BaseModel):
    """A route's response cache (see docs/caching.md); fields a route leaves out come from the global ``cache``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    ttl_s: float = Field(default=3600.0, gt=0, le=366 * 86400, description="seconds an answer stays servable")
    scope: Literal["team", "key", "global"] = Field(
        default="team", description="who shares entries: the caller's team (its key when it has none), key, or all"
    )
    allow_sampled: bool = Field(
        default=False, description="cache requests sampled at temperature > 0 (or left at the upstream's default)"
    )
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)


class CacheSettings(CacheConfig):
    """The gateway's response cache: defaults for every route plus the store's size."""

    max_entries: int = Field(default=10_000, ge=1, description="entries kept in memory; least recently used go first")
    persist: bool = Field(default=True, description="keep entries across restarts in data_dir/cache.sqlite3")

    def for_route(self, route: CacheConfig | None) -> CacheConfig:
        """The route's cache config: what the route set (in ``semantic`` too), the rest from these settings."""
        base = CacheConfig.model_validate(self.model_dump(include=set(CacheConfig.model_fields)))
        if route is None:
            return base
        update = {}
        for name in route.model_fields_set:
            value = getattr(route, name)
            if isinstance(value, SemanticCacheConfig):  # merged field by field, like the block around it
                value = base.semantic.model_copy(update={n: getattr(value, n) for n in value.model_fields_set})
            update[name] = value
        return base.model_copy(update=update)
