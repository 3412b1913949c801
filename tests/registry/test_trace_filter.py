from __future__ import annotations

import time

import pytest

from lmdeck.protocol import APIError
from lmdeck.protocol.traces import TraceRecord
from lmdeck.registry.trace_filter import FilterKey, TraceFilterParser


def test_equal_terms_narrow_the_store_query() -> None:
    query, predicates = TraceFilterParser.default().parse('route=demo status=ok tag="needs review" since=2h')
    assert query.route == "demo" and query.errors is False and query.tag == "needs review"
    assert query.since is not None and abs(query.since - (time.time() - 7200)) < 5
    assert predicates == []


def test_comparisons_become_predicates() -> None:
    query, predicates = TraceFilterParser.default().parse("status>=400 latency>=100 model!=m1")
    assert query.min_latency_ms == 100.0
    slow_error = TraceRecord(status_code=502, latency_ms=150, upstream_model="m2")
    fine = TraceRecord(status_code=200, latency_ms=150, upstream_model="m2")
    assert all(p(slow_error) for p in predicates)
    assert not all(p(fine) for p in predicates)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("feedback>=1", "unknown key 'feedback'"),
        ("route>demo", "route takes = !="),
        ("since=yesterday", "duration"),
        ("justaword", "is not 'key OP value'"),
        ("status=teapot", "status"),
    ],
)
def test_bad_filters_are_400s_that_say_why(text: str, fragment: str) -> None:
    with pytest.raises(APIError) as info:
        TraceFilterParser.default().parse(text)
    assert info.value.status == 400 and fragment in info.value.message


def test_other_parts_of_lmdeck_can_add_keys() -> None:
    parser = TraceFilterParser.default()
    parser.add(
        "feedback",
        FilterKey(
            predicate=lambda op, value: lambda r: r.metadata.get("feedback", 0) >= float(value),
            ops=(">=",),
            query_ops=(),
        ),
    )
    _, predicates = parser.parse("route=demo feedback>=1")
    assert predicates[0](TraceRecord(metadata={"feedback": 1}))
    assert not predicates[0](TraceRecord(metadata={}))
