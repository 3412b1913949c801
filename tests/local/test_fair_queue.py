"""The fair waiting line: turns across groups, then across members, instead of first-in-first-out."""

from __future__ import annotations

from lmdeck.local.fair_queue import FairQueue


def drain(queue: FairQueue[str]) -> list[str]:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item)
    return out


def test_groups_take_turns_then_members_inside_a_group() -> None:
    queue = FairQueue[str]()
    for i in range(4):
        queue.push("red", "k1", f"r1.{i}")
    queue.push("red", "k2", "r2.0")
    queue.push("blue", "k9", "b.0")
    queue.push("blue", "k9", "b.1")
    assert len(queue) == 7
    # FIFO would serve all four of r1 first; here blue waits one turn and red's second key one red turn.
    assert drain(queue) == ["r1.0", "b.0", "r2.0", "b.1", "r1.1", "r1.2", "r1.3"]
    assert len(queue) == 0


def test_the_turn_goes_first_to_preferred_groups() -> None:
    queue = FairQueue[str]()
    for item in ("r0", "r1"):
        queue.push("red", "k", item)
    queue.push("blue", "k", "b0")
    assert queue.pop(prefer=lambda group: group == "blue") == "b0"
    assert queue.pop(prefer=lambda group: group == "blue") == "r0"  # nobody preferred waits: any turn
    assert queue.sizes() == {"red": 1}


def test_front_remove_last_and_discard() -> None:
    queue = FairQueue[str]()
    for item in ("a", "b", "c"):
        queue.push("red", "k", item)
    queue.push("red", "k", "again", front=True)
    assert queue.remove_last("red") == "c"
    assert queue.remove_last("nobody") is None
    assert queue.discard(lambda item: item == "a") == 1
    assert list(queue) == ["again", "b"]
    assert drain(queue) == ["again", "b"]
    assert queue.sizes() == {}
