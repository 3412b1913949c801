"""Where traces end up: the :class:`TraceStore` protocol.

The store is written by one background thread (the store writer) and read by
the traces API off the event loop; every method is synchronous and may block.
:class:`~lmdeck.tracing.sql_store.SQLTraceStore` is the implementation for
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import TracePage, TraceQuery


class TraceStore(Protocol):
    """Durable storage of trace records, keyed by ``TraceRecord.id``."""

    def insert(self, records: Sequence[TraceRecord]) -> None:
        """Store each record unless one with its id is already stored (insert-or-ignore)."""
        ...

    def get(self, id: str) -> TraceRecord | None: ...

    def query(self, query: TraceQuery) -> TracePage: ...
