"""``RequestIds``: the edge stamps one typed value on the scope; inner layers read it back."""

from __future__ import annotations

from typing import Any

from lmdeck.pipeline.request_ids import RequestIds


def test_the_ids_stamped_on_a_scope_are_read_back() -> None:
    scope: dict[str, Any] = {"type": "http"}
    ids = RequestIds(request_id="req_1", trace_id="a" * 32, span_id="b" * 16, client_trace_id="c" * 32)
    ids.stamp(scope)
    assert RequestIds.of(scope) is ids


def test_a_scope_the_middleware_never_saw_has_no_ids() -> None:
    assert RequestIds.of({"type": "http"}) is None
    assert RequestIds.of({"type": "http", "state": {}}) is None


def test_stamping_keeps_what_else_the_state_holds() -> None:
    scope: dict[str, Any] = {"type": "http", "state": {"other": 1}}
    RequestIds(request_id="req_1", trace_id="a" * 32, span_id="b" * 16).stamp(scope)
    assert scope["state"]["other"] == 1
