"""The Redis that replicas share, reached through one client with a declared failure policy.

    link = RedisLink.from_settings(settings, registry=metrics.registry)   # None when redis.url is unset
    try:
        level = await link.run("rate_limits", lambda r: r.get(link.key("bucket", "key:k1")))
    except SharedStateUnavailable as down:
        if link.policy("rate_limits") == "closed":
            raise link.refusal(down) from down
        ...                                     # "open": this process's own state serves the request
    await link.close()

Every command runs under ``redis.timeout`` seconds. A command that cannot reach Redis or times out
marks Redis down for ``redis.retry_interval`` seconds (an error answer, such as a full Redis's OOM,
fails that one command only): during that time :meth:`RedisLink.run` raises
:class:`SharedStateUnavailable` at once, so no request waits out a timeout while Redis is away. The
first failure of an outage is logged once (with the feature and its policy) and so is the recovery;
``lmdeck_redis_up`` (gauge, 1/0) and ``lmdeck_redis_unavailable_total{feature}`` (counter: operations
that fell back to the failure policy) show it on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lmdeck.protocol import APIError
from lmdeck.settings import RedisFailure, RedisSettings, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The features that keep state in Redis; each has its policy in ``redis.on_unavailable``
#: (``changes``, the pub/sub notices, always falls back to polling).
Feature = Literal["rate_limits", "budgets", "breakers", "cache", "changes"]


#: Connections one process opens to Redis at most.
MAX_CONNECTIONS = 128


class SharedStateUnavailable(Exception):
    """Redis could not serve an operation of ``feature`` (error, timeout, or still inside the retry interval)."""

    def __init__(self, feature: Feature, reason: str) -> None:
        super().__init__(f"Redis is unavailable for {feature}: {reason}")
        self.feature = feature
        self.reason = reason


class RedisLink:
    """One Redis client, its key prefix, its failure policy and its availability (see the module docstring)."""

    def __init__(
        self,
        settings: RedisSettings,
        client: Redis,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.client = client
        self.prefix = settings.key_prefix
        self.clock = clock
        self._down_until = 0.0
        self._down_since: float | None = None
        registry = registry if registry is not None else CollectorRegistry()
        self._up = Gauge(
            "lmdeck_redis_up", "1 while the shared Redis answers, 0 after a failed command", registry=registry
        )
        self._up.set(1)
        self._unavailable = Counter(
            "lmdeck_redis_unavailable",
            "operations that Redis could not serve and that followed the feature's failure policy",
            ["feature"],
            registry=registry,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, registry: CollectorRegistry | None = None) -> RedisLink | None:
        """The link ``settings.redis`` describes, or None when ``redis.url`` is unset. Connects lazily."""
        config = settings.redis
        if config.url is None:
            return None
        password = config.password.resolve() if config.password is not None else None
        # Requests beyond the pool wait for a connection (within redis.timeout, like any command)
        # instead of failing at once as the default pool does, which would read as Redis being down.
        pool = BlockingConnectionPool.from_url(
            config.url,
            password=password,
            socket_timeout=config.timeout,
            socket_connect_timeout=config.timeout,
            health_check_interval=30,
            max_connections=MAX_CONNECTIONS,
            timeout=config.timeout,
        )
        client = Redis.from_pool(pool)
        return cls(config, client, registry=registry)

    def key(self, *parts: str) -> str:
        """A key (or channel) name under the prefix: ``key("rl", "key:k1")`` → ``lmdeck:rl:key:k1``."""
        return self.prefix + ":".join(parts)

    def policy(self, feature: Feature) -> RedisFailure:
        """``open`` or ``closed``: what ``feature`` does while Redis is unavailable (``changes``: always open)."""
        if feature == "changes":
            return "open"
        policy: RedisFailure = getattr(self.settings.on_unavailable, feature)
        return policy

    @property
    def up(self) -> bool:
        """False from a failed command until one succeeds again."""
        return self._down_since is None

    def script(self, source: str) -> AsyncScript:
        """A Lua script, run by its SHA (loaded again when Redis restarted and forgot it)."""
        return self.client.register_script(source)

    async def run(self, feature: Feature, op: Callable[[Redis], Awaitable[T]]) -> T:
        """``await op(client)`` within ``redis.timeout``; :class:`SharedStateUnavailable` when Redis cannot serve it."""
        now = self.clock()
        if now < self._down_until:
            self._unavailable.labels(feature).inc()
            raise SharedStateUnavailable(feature, "a command failed less than redis.retry_interval ago")
        try:
            result = await asyncio.wait_for(op(self.client), self.settings.timeout)
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            self._failed(feature, exc)
            raise SharedStateUnavailable(feature, _describe(exc)) from exc
        except RedisError as exc:
            # Redis answered, with an error for this command only (a full Redis, a wrong type): the other
            # features keep using it, and this operation follows its feature's policy.
            self._unavailable.labels(feature).inc()
            log.error("Redis refused a %s command: %s", feature, _describe(exc))
            raise SharedStateUnavailable(feature, _describe(exc)) from exc
        # Only a command sent after the failure proves Redis is back (one sent before may finish after it).
        if self._down_since is not None and now >= self._down_since:
            log.warning("Redis is reachable again after %.1f s; shared state is back on", now - self._down_since)
            self._down_since = None
            self._up.set(1)
        return result

    def _failed(self, feature: Feature, exc: BaseException) -> None:
        now = self.clock()
        self._down_until = now + self.settings.retry_interval
        self._unavailable.labels(feature).inc()
        if self._down_since is None:
            self._down_since = now
            self._up.set(0)
            log.error(
                "Redis is unavailable (%s): %s follows its failure policy %r (redis.on_unavailable); "
                "retrying every %.1f s",
                _describe(exc),
                feature,
                self.policy(feature),
                self.settings.retry_interval,
            )

    def refusal(self, down: SharedStateUnavailable) -> APIError:
        """The 503 a ``closed`` feature answers while Redis is unavailable, in OpenAI's error shape."""
        return APIError(
            503,
            f"{down.feature.replace('_', ' ')} are kept in Redis, which is unavailable ({down.reason}); "
            f"redis.on_unavailable.{down.feature} is 'closed', so the request is refused rather than served "
            "unchecked. Retry shortly.",
            type="server_error",
            code="shared_state_unavailable",
            headers={"retry-after": str(max(int(self.settings.retry_interval), 1))},
        )

    async def close(self) -> None:
        await self.client.aclose()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
