"""What steps pass each other on a request: typed slots, told apart by identity, not by name."""

from __future__ import annotations

from lmdeck.pipeline.context import RequestContext, Slot, Slots
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.traces import TraceRecord

COUNT: Slot[int] = Slot("count")
SAME_NAME: Slot[str] = Slot("count")


def test_a_slot_reads_back_what_was_put_in_it() -> None:
    slots = Slots()
    assert slots.get(COUNT) is None and COUNT not in slots
    slots.put(COUNT, 3)
    assert slots.get(COUNT) == 3 and COUNT in slots
    slots.put(COUNT, 4)
    assert slots.get(COUNT) == 4


def test_slots_with_one_name_never_collide() -> None:
    slots = Slots()
    slots.put(COUNT, 1)
    assert slots.get(SAME_NAME) is None
    slots.put(SAME_NAME, "one")
    assert (slots.get(COUNT), slots.get(SAME_NAME)) == (1, "one")
    assert repr(SAME_NAME) == "Slot('count')"


def test_each_request_has_its_own_slots_and_attempt_count() -> None:
    body = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    first = RequestContext(kind="chat", body=body, request_id="a", trace=TraceRecord())
    second = RequestContext(kind="chat", body=body, request_id="b", trace=TraceRecord())
    first.slots.put(COUNT, 1)
    first.upstream_attempts += 1
    assert second.slots.get(COUNT) is None and second.upstream_attempts == 0
