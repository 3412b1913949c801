"""The release step's assignment and the OTel attributes of a trace it stamped."""

from __future__ import annotations

from lmdeck.db import Database
from lmdeck.delivery.step import candidate_point
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.otel import genai_attributes
from lmdeck.tracing.signals import Signals
from lmdeck.tracing.sql_store import SQLTraceStore


def test_assignment_is_sticky_and_grows_with_the_share() -> None:
    """A subject's point never changes, so the candidates of a smaller share stay candidates in a larger one."""
    points = [candidate_point("reply-v3", f"user:{i}") for i in range(2000)]
    assert points == [candidate_point("reply-v3", f"user:{i}") for i in range(2000)]
    at = {share: {i for i, p in enumerate(points) if p * 100 < share} for share in (5, 25, 50, 100)}
    assert at[5] <= at[25] <= at[50] <= at[100] and len(at[100]) == 2000
    assert 0.2 < len(at[25]) / 2000 < 0.3
    other = [candidate_point("other-release", f"user:{i}") for i in range(2000)]
    assert points != other  # each release draws its own candidates


def test_a_stamped_trace_carries_the_release_attributes() -> None:
    record = TraceRecord(route="support", metadata={"release": "reply-v3", "variant": "candidate", "release_step": 1})
    attrs = genai_attributes(record)
    assert (attrs["lmdeck.release.id"], attrs["lmdeck.release.variant"], attrs["lmdeck.release.step"]) == (
        "reply-v3",
        "candidate",
        1,
    )
    assert "lmdeck.release.id" not in genai_attributes(TraceRecord(route="support"))


def test_signals_split_a_route_by_variant(database: Database) -> None:
    """The trace stamp feeds the rollups' ``variant`` dimension: Signals split baseline from candidate,
    over whole minutes (rollups) and the slivers at either end (raw traces) alike."""
    start = 1_800_000_000.0
    records = [
        TraceRecord(
            route="support",
            created_at=start + 30 + i,
            status_code=500 if i % 4 == 1 else 200,
            latency_ms=10.0,
            metadata={"release": "reply-v3", "variant": "candidate" if i % 2 else "baseline", "release_step": 0},
        )
        for i in range(100)
    ]
    SQLTraceStore(database).insert(records)
    totals = Signals(database, minute_days=None).totals(
        by=("variant",), since=start + 15, until=start + 200, where={"route": "support"}
    )
    found = {t.group["variant"]: (t.requests, t.errors) for t in totals}
    assert found == {"baseline": (50, 0), "candidate": (50, 25)}
