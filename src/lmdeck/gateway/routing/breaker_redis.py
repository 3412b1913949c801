"""Breaker records in the Redis every replica shares, so a target one gateway takes out of rotation
is out of rotation for all of them::

    store = RedisBreakerStore(link)                      # link: lmdeck.db.redis_link.RedisLink
    breakers = CircuitBreakers(settings.breaker, store)

Each target's record is a hash ``<prefix>breaker:<target id>`` with the fields ``state``
(``closed``/``open``/``half_open``), ``failures``, ``opened_at`` (Unix seconds, wall clock, so
that every replica reads the same time) and ``probes``. A record back at closed-with-no-failures
is deleted, so Redis holds only the breakers that are counting or open.

:meth:`RedisBreakerStore.update` reads the record and, when the change writes, writes it in an
optimistic transaction (``WATCH``/``MULTI``/``EXEC``) that is retried when another replica changed
the record in between: of many replicas asking for the one half-open probe at once, exactly one
gets it. A change that writes nothing (a request through a closed breaker) costs one ``HGETALL``.

While Redis is unavailable the ``redis.on_unavailable.breakers`` policy applies: ``open`` (the
default) keeps each process on breakers of its own, starting from the records it last saw in
Redis, until Redis answers again; ``closed`` answers every breaker operation with the 503 of
:meth:`~lmdeck.db.redis_link.RedisLink.refusal` (``code: shared_state_unavailable``), a request
that had already been sent upstream included.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from lmdeck.db.redis_link import RedisLink, SharedStateUnavailable
from lmdeck.gateway.routing.breaker import CLOSED, BreakerRecord, BreakerState, Change, InProcessBreakerStore


class RedisBreakerStore:
    """A :class:`~lmdeck.gateway.routing.breaker.BreakerStore` in Redis (see the module docstring)."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        #: This process's own breakers, used while Redis is unavailable under the ``open`` policy.
        self.fallback = InProcessBreakerStore()
        self._seen: dict[str, BreakerRecord] = {}

    def _key(self, target_id: str) -> str:
        return self.link.key("breaker", target_id)

    async def load(self, target_id: str) -> BreakerRecord:
        key = self._key(target_id)
        try:
            raw = await self.link.run("breakers", lambda r: r.hgetall(key))
        except SharedStateUnavailable as down:
            record = await self._local(down, target_id).load(target_id)
        else:
            record = decode(raw)
            self.fallback.forget(target_id)
        self._seen[target_id] = record
        return record

    async def update(self, target_id: str, change: Change) -> BreakerRecord:
        key = self._key(target_id)
        try:
            record = await self.link.run("breakers", lambda r: _transact(r, key, change))
        except SharedStateUnavailable as down:
            record = await self._local(down, target_id).update(target_id, change)
        else:
            self.fallback.forget(target_id)
        self._seen[target_id] = record
        return record

    def snapshot(self) -> dict[str, BreakerRecord]:
        return dict(self._seen)

    def _local(self, down: SharedStateUnavailable, target_id: str) -> InProcessBreakerStore:
        if self.link.policy("breakers") == "closed":
            raise self.link.refusal(down) from down
        seen = self._seen.get(target_id)
        if seen is not None:
            self.fallback.seed(target_id, seen)
        return self.fallback


async def _transact(client: Redis, key: str, change: Change) -> BreakerRecord:
    before = decode(await client.hgetall(key))
    if change(before) == before:
        return before
    async with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                before = decode(await pipe.hgetall(key))
                after = change(before)
                if after == before:
                    await pipe.unwatch()
                    return after
                pipe.multi()
                if after == CLOSED:
                    pipe.delete(key)
                else:
                    pipe.hset(key, mapping=encode(after))
                await pipe.execute()
                return after
            except WatchError:
                continue  # another replica changed the record after our read: read it again


def encode(record: BreakerRecord) -> dict[FieldT, EncodableT]:
    """The hash fields of ``record``."""
    return {
        "state": record.state,
        "failures": str(record.failures),
        "opened_at": repr(record.opened_at),
        "probes": str(record.probes),
    }


def decode(raw: Mapping[bytes | str, bytes | str]) -> BreakerRecord:
    """The record of ``HGETALL``'s answer; an empty (absent) or unreadable hash is a closed breaker."""
    try:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        found = fields.get("state")
        state: BreakerState | None = "open" if found == "open" else "half_open" if found == "half_open" else None
        if state is not None:
            return BreakerRecord(
                state=state,
                failures=int(fields.get("failures", "0")),
                opened_at=float(fields.get("opened_at", "0")),
                probes=int(fields.get("probes", "0")),
            )
        if found == "closed":
            return BreakerRecord(failures=int(fields.get("failures", "0")))
    except (ValueError, UnicodeDecodeError):
        pass
    return CLOSED


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
