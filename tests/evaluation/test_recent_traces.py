"""The traces kept in memory for early feedback stay few, however many requests pass.

Regression: the gateway kept 20,000 traces (60,000 ids) here, about 0.8 KB a request, so a
long-running gateway's memory grew with every request until the first 20,000.
"""

from __future__ import annotations

from lmdeck.evaluation.feedback.service import RECENT_TRACES, RecentTraces
from lmdeck.protocol.traces import TraceRecord

from .conftest import Deck


def test_recent_traces_hold_at_most_three_ids_per_trace_of_capacity() -> None:
    recent = RecentTraces(capacity=100)
    records = [TraceRecord(request_id=f"req_{i}", route="calc") for i in range(10_000)]
    for record in records:
        recent.observe(record)
    assert len(recent) <= 3 * 100
    last = records[-1]
    for key in (last.id, last.request_id, last.trace_id):
        assert recent.get(key) is not None and recent.get(key).id == last.id  # type: ignore[union-attr]
    assert recent.get(records[0].id) is None and recent.get(records[0].request_id) is None


def test_the_default_capacity_is_a_few_seconds_of_traffic_not_a_history() -> None:
    assert RECENT_TRACES <= 10_000


async def test_the_gateways_own_recent_traces_stay_bounded(deck: Deck) -> None:
    recent: RecentTraces = deck.evaluation.recent
    recent.capacity = 10
    for i in range(60):
        response = await deck.chat(
            model="calc", messages=[{"role": "user", "content": f"What is {i} + 1?"}], user=f"u{i}"
        )
        assert response.status_code == 200
    assert len(recent) <= 3 * 10
    latest = response.headers["x-request-id"]
    feedback = await deck.call("POST", "/api/feedback", json={"trace_id": latest, "value": "up"})
    assert feedback.status_code == 201, feedback.text
