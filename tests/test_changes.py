"""Change notices in one process: subscribers by topic; publishing reaches no other process."""

from __future__ import annotations

import logging

import pytest

from lmdeck.changes import TOPICS, ChangeNotices


def test_delivery_nudges_the_topic_s_subscribers_and_a_failing_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notices = ChangeNotices()
    nudged: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    notices.subscribe("registry", lambda: nudged.append("registry"))
    notices.subscribe("registry", broken)
    notices.subscribe("policy", lambda: nudged.append("policy"))
    notices.publish("registry")  # in-process: nobody else to tell
    assert nudged == []
    with caplog.at_level(logging.ERROR, logger="lmdeck.changes"):
        notices.deliver("registry")
        notices.deliver("no-such-topic")
    assert nudged == ["registry"]
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None
    notices.deliver_all()
    assert sorted(nudged) == ["policy", "registry", "registry"]


def test_the_topics() -> None:
    assert set(TOPICS) == {"registry", "policy", "flags", "delivery", "experiments", "online_evals"}
