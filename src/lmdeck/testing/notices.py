"""A FAKE transport for change notices (:mod:`lmdeck.changes`), for tests of several "processes" in one.

sent, received = LoopbackNotices(), LoopbackNotices()
sent.peers.append(received)
writer.live.follow_changes(sent)       # what the writer publishes ...
reader.live.follow_changes(received)   # ... nudges the reader's subscribers, at once
"""

from __future__ import annotations

from lmdeck.changes import ChangeNotices, Topic


class LoopbackNotices(ChangeNotices):
    """A FAKE: delivers what it publishes to its ``peers`` in this process (and records it in ``published``)."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[ChangeNotices] = []
        self.published: list[Topic] = []

    def publish(self, topic: Topic) -> None:
        self.published.append(topic)
        for peer in self.peers:
            peer.deliver(topic)
