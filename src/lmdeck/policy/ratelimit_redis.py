"""Rate limits every replica shares: the token buckets of :mod:`lmdeck.policy.ratelimit`, kept in Redis.

    limiter = RedisRateLimiter(link)                 # link: lmdeck.db.redis_link.RedisLink
    grant = await limiter.acquire([Demand("key:k1:tokens", limit=10_000, amount=850)])
    if grant.admitted:
        ...
        await limiter.settle(grant, {"key:k1:tokens": 612})

The semantics are :class:`~lmdeck.policy.ratelimit.MemoryRateLimiter`'s: a bucket holds up to
``limit`` units and refills at ``limit`` per minute; every demand of a request is checked before
any is taken; settling gives back (or takes more of) the difference, so a bucket may run into
debt. Each acquire and each settle is ONE Lua script, so Redis runs it without interleaving any
other replica's: replicas never admit more than a bucket holds. Time is Redis's own (``TIME``), so
every replica refills by one clock. A bucket is the hash ``<prefix>rl:<bucket>`` (``level``,
``at`` in seconds, ``limit``); it expires two minutes after it would be full again, so an idle
bucket vanishes (and a vanished bucket is a full one).

While Redis is unavailable (:class:`~lmdeck.db.redis_link.SharedStateUnavailable`) the failure
policy ``redis.on_unavailable.rate_limits`` applies: ``open`` counts the request in this process's
own :class:`MemoryRateLimiter` (and settles it there), ``closed`` refuses it with the link's 503.
No call waits longer than ``redis.timeout``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

from lmdeck.db.redis_link import RedisLink, SharedStateUnavailable
from lmdeck.policy.ratelimit import BucketState, Demand, Grant, MemoryRateLimiter

log = logging.getLogger(__name__)

#: Seconds a bucket outlives the moment it would be full again.
IDLE_GRACE = 120

# KEYS: one bucket per demand. ARGV: limit, amount for each demand, then the idle grace.
# Returns {refused index (0: admitted), retry seconds ("-1": never fits), level of each bucket}.
# Levels and times go back as strings: Redis would truncate Lua numbers to integers.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS
local grace = tonumber(ARGV[2 * n + 1])
local levels = {}
local refused = 0
local retry = -1
for i = 1, n do
  local limit = tonumber(ARGV[2 * i - 1])
  local amount = tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', KEYS[i], 'level', 'at', 'limit')
  local level = tonumber(b[1])
  if level == nil then
    level = limit
  else
    if tonumber(b[3]) ~= limit then level = math.min(level, limit) end
    level = math.min(limit, level + math.max(now - tonumber(b[2]), 0) * limit / 60)
  end
  levels[i] = level
  if refused == 0 then
    if amount > limit then
      refused = i
    elseif level < amount then
      refused = i
      retry = (amount - level) * 60 / limit
    end
  end
end
local out = {refused, tostring(retry)}
for i = 1, n do
  local limit = tonumber(ARGV[2 * i - 1])
  if refused == 0 then
    levels[i] = levels[i] - tonumber(ARGV[2 * i])
    redis.call('HSET', KEYS[i], 'level', tostring(levels[i]), 'at', tostring(now), 'limit', limit)
    redis.call('EXPIRE', KEYS[i], math.ceil((limit - levels[i]) * 60 / limit) + grace)
  end
  out[i + 2] = tostring(levels[i])
end
return out
"""

# KEYS: buckets. ARGV: units given back to each (negative: taken), then the idle grace.
# A bucket that has vanished was full, and stays so.
SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local grace = tonumber(ARGV[#KEYS + 1])
for i = 1, #KEYS do
  local b = redis.call('HMGET', KEYS[i], 'level', 'at', 'limit')
  local level = tonumber(b[1])
  if level ~= nil then
    local limit = tonumber(b[3])
    level = math.min(limit, level + math.max(now - tonumber(b[2]), 0) * limit / 60)
    level = math.min(limit, level + tonumber(ARGV[i]))
    redis.call('HSET', KEYS[i], 'level', tostring(level), 'at', tostring(now))
    redis.call('EXPIRE', KEYS[i], math.ceil((limit - level) * 60 / limit) + grace)
  end
end
return 1
"""


class RedisRateLimiter:
    """Token buckets in the Redis replicas share (see the module docstring).

    ``fallback`` is the in-process limiter an ``open`` failure policy counts in while Redis is away.
    """

    def __init__(self, link: RedisLink, *, fallback: MemoryRateLimiter | None = None) -> None:
        self.link = link
        self.fallback = fallback or MemoryRateLimiter()
        self._acquire = link.script(ACQUIRE)
        self._settle = link.script(SETTLE)

    def _keys(self, buckets: Sequence[str]) -> list[str]:
        return [self.link.key("rl", bucket) for bucket in buckets]

    async def acquire(self, demands: Sequence[Demand]) -> Grant:
        """Take every demand or none; a refused grant names the first demand that did not fit."""
        if not demands:
            return Grant(True)
        keys = self._keys([d.bucket for d in demands])
        args: list[int] = [n for d in demands for n in (d.limit, d.amount)] + [IDLE_GRACE]
        try:
            reply = await self.link.run("rate_limits", lambda r: self._acquire(keys=keys, args=args, client=r))
        except SharedStateUnavailable as down:
            if self.link.policy("rate_limits") == "closed":
                raise self.link.refusal(down) from down
            grant = await self.fallback.acquire(demands)
            grant.fallback = True
            return grant
        refused, retry = int(reply[0]), float(reply[1])
        states = [_state(d, float(level)) for d, level in zip(demands, reply[2:], strict=True)]
        if refused:
            return Grant(False, states, refused=demands[refused - 1], retry_after=retry if retry >= 0 else None)
        return Grant(True, states, taken={d.bucket: d.amount for d in demands})

    async def settle(self, grant: Grant, actual: Mapping[str, int]) -> None:
        """Give back what ``grant`` took beyond ``actual`` (or take the shortfall); once per grant."""
        if grant.fallback:
            await self.fallback.settle(grant, actual)
            return
        if grant.settled or not grant.admitted:
            return
        grant.settled = True
        changes = {name: grant.taken[name] - amount for name, amount in actual.items() if name in grant.taken}
        changes = {name: delta for name, delta in changes.items() if delta}
        if not changes:
            return
        keys = self._keys(list(changes))
        args = [*changes.values(), IDLE_GRACE]
        try:
            await self.link.run("rate_limits", lambda r: self._settle(keys=keys, args=args, client=r))
        except SharedStateUnavailable as down:
            # The estimate stays taken: the bucket is at most that much fuller than it should be
            # until it refills. The outage itself is logged by the link.
            log.debug("rate-limit settle skipped: %s", down)


def _state(demand: Demand, level: float) -> BucketState:
    return BucketState(
        bucket=demand.bucket,
        unit=demand.unit,
        limit=demand.limit,
        remaining=max(math.floor(level), 0),
        reset_seconds=max(demand.limit - level, 0.0) * 60.0 / demand.limit,
    )
