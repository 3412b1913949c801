"""Storing spool lines: decode, insert in one batch, and split a batch the store refuses.

    done = store_lines(store, [b'{"id": "a", ...}\\n', ...])
    done.stored                  # records inserted (or already there: insert-or-ignore)
    done.unreadable              # why each line that is not a trace record was skipped
    done.rejected                # records the store refused outright, with its reason

The store writer calls this in its own thread, or in its store process (see
:mod:`lmdeck.tracing.store_process`), where the decoding and the inserts never hold
the serving process's interpreter lock. A store that is away (a lost connection,
a locked database) raises :class:`StoreUnavailable`, which the writer retries as
a whole: records inserted before it are ignored the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.codec import UnreadableLine, decode
from lmdeck.tracing.store import TraceStore


class StoreUnavailable(Exception):
    """The store cannot be reached right now (retry later); the message is the store's own error."""


@dataclass
class Rejected:
    """A record the store refused (bad data, not a lost connection): its id, the reason and the record."""

    id: str
    error: str
    record: dict[str, Any]


@dataclass
class Stored:
    """What became of a batch of lines (see the module docs)."""

    stored: int = 0
    unreadable: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def transient(exc: BaseException) -> bool:
    """A failure worth retrying as is (the store is away or busy), rather than data it refuses."""
    if isinstance(exc, StoreUnavailable | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def store_lines(store: TraceStore, lines: Sequence[bytes]) -> Stored:
    """Decode ``lines`` and insert them; raises :class:`StoreUnavailable` when the store is away."""
    done = Stored()
    records: list[TraceRecord] = []
    for line in lines:
        try:
            records.append(decode(line))
        except UnreadableLine as exc:
            done.unreadable.append(str(exc))
    _insert(store, records, done)
    return done


def _insert(store: TraceStore, records: list[TraceRecord], done: Stored) -> None:
    if not records:
        return
    try:
        store.insert(records)
    except Exception as exc:
        if transient(exc):
            raise StoreUnavailable(" ".join(str(exc).split())[:500] or type(exc).__name__) from exc
        if len(records) > 1:
            for record in records:
                _insert(store, [record], done)
            return
        reason = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
        done.rejected.append(Rejected(records[0].id, reason, records[0].to_dict()))
        return
    done.stored += len(records)
