"""Where traces end up: the :class:`TraceStore`, :class:`TraceAnalytics` and :class:`TraceBackend` protocols.

A storage engine for traces implements :class:`TraceBackend`: inserts (exactly once by id),
listings, group-bys and time series from its own aggregates, retention and rebuilding those
aggregates. The API reaches analytics through :class:`TraceAnalytics` when the gateway's
store provides it, so a columnar engine can take over without the routes changing.

The store is written by one background thread (the store writer) and read by
the traces API off the event loop; every method is synchronous and may block.
:class:`~lmdeck.tracing.sql_store.SQLTraceStore` is the implementation for
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import TracePage, TraceQuery

if TYPE_CHECKING:
    from lmdeck.tracing.retention import Pruned, Retention
    from lmdeck.tracing.signals import Totals


class TraceStore(Protocol):
    """Durable storage of trace records, keyed by ``TraceRecord.id``."""

    def insert(self, records: Sequence[TraceRecord]) -> None:
        """Store each record unless one with its id is already stored (insert-or-ignore)."""
        ...

    def get(self, id: str) -> TraceRecord | None: ...

    def query(self, query: TraceQuery) -> TracePage: ...


@runtime_checkable
class TraceAnalytics(Protocol):
    """Group-bys and time series over the traces, answered from pre-aggregated data, never a scan.

    :class:`~lmdeck.tracing.signals.Signals` answers them from the SQL rollups; a columnar
    backend (ClickHouse, see docs/tracing.md) would answer them from its own aggregates. Dimensions
    are those of :data:`lmdeck.tracing.rollups.DIMENSIONS`; times are epoch seconds, ``until``
    exclusive (None: now); ``where`` holds exact matches on dimensions; quantiles are of latency
    in ms, each in [0, 1]. A wrong dimension or step raises
    :class:`~lmdeck.tracing.signals.SignalError` naming it.
    """

    def totals(
        self,
        *,
        by: Sequence[str] = (),
        since: float,
        until: float | None = None,
        where: Mapping[str, Any] | None = None,
        quantiles: Sequence[float] = (),
    ) -> list[Totals]: ...

    def series(
        self,
        *,
        step: int,
        by: Sequence[str] = (),
        since: float,
        until: float | None = None,
        where: Mapping[str, Any] | None = None,
        quantiles: Sequence[float] = (),
    ) -> list[Totals]: ...


@runtime_checkable
class TraceBackend(TraceStore, TraceAnalytics, Protocol):
    """Everything a trace storage engine provides: storage and listings (:class:`TraceStore`),
    analytics (:class:`TraceAnalytics`), retention and rebuilding its aggregates.

    :class:`~lmdeck.tracing.sql_store.SQLTraceStore` implements it on SQLite and PostgreSQL.
    """

    def prune(self, policy: Retention, *, now: float) -> Pruned:
        """Delete what ``policy`` no longer keeps; raw traces go before their aggregates."""
        ...

    def rebuild_rollups(self) -> int:
        """Recompute the aggregates from the raw traces still kept; the number of traces read."""
        ...
