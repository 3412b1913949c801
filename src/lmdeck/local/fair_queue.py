"""A waiting line that takes turns: round-robin across groups (teams), then across members (keys) in each.

First-in-first-out lets one caller who queued a hundred requests make everyone after them wait for all
hundred; here each group gets the next free place in turn, and inside a group each member does::

    queue = FairQueue[str]()
    for i in range(3):
        queue.push("team-a", "key-1", f"a{i}")
    queue.push("team-b", "key-9", "b0")
    [queue.pop() for _ in range(4)]     # ['a0', 'b0', 'a1', 'a2']

``pop(prefer=...)`` first offers the turn to the groups ``prefer`` accepts (those under their fair
share, say), and to the others only when none of those is waiting.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _Group(Generic[T]):
    def __init__(self) -> None:
        self.members: OrderedDict[str, deque[T]] = OrderedDict()
        self.size = 0

    def push(self, member: str, item: T, *, front: bool = False) -> None:
        line = self.members.setdefault(member, deque())
        if front:
            line.appendleft(item)
        else:
            line.append(item)
        self.size += 1

    def pop(self) -> T:
        member, line = next(iter(self.members.items()))
        item = line.popleft()
        self.size -= 1
        del self.members[member]
        if line:
            self.members[member] = line  # its next item waits for the other members' turns
        return item


class FairQueue(Generic[T]):
    """Items waiting per (group, member), served in turns. Not thread-safe: the caller holds a lock."""

    def __init__(self) -> None:
        self._groups: OrderedDict[str, _Group[T]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[T]:
        for group in self._groups.values():
            for line in group.members.values():
                yield from line

    def push(self, group: str, member: str, item: T, *, front: bool = False) -> None:
        """Queue ``item``; ``front`` puts it before the member's other items (a request that lost its place)."""
        self._groups.setdefault(group, _Group()).push(member, item, front=front)
        self._size += 1

    def pop(self, prefer: Callable[[str], bool] | None = None) -> T | None:
        """The next item in turn (the turn goes first to a group ``prefer`` accepts), or None when empty."""
        if not self._size:
            return None
        name = next((g for g in self._groups if prefer(g)), None) if prefer is not None else None
        if name is None:
            name = next(iter(self._groups))
        group = self._groups.pop(name)
        item = group.pop()
        self._size -= 1
        if group.size:
            self._groups[name] = group  # to the back of the line of groups
        return item

    def sizes(self) -> dict[str, int]:
        """Items waiting, by group."""
        return {name: group.size for name, group in self._groups.items()}

    def remove_last(self, group: str) -> T | None:
        """Take back the newest item of ``group``'s largest member (to make room for another group)."""
        found = self._groups.get(group)
        if found is None:
            return None
        member = max(found.members, key=lambda m: len(found.members[m]))
        line = found.members[member]
        item = line.pop()
        found.size -= 1
        self._size -= 1
        if not line:
            del found.members[member]
        if not found.size:
            del self._groups[group]
        return item

    def discard(self, drop: Callable[[T], bool]) -> int:
        """Remove every item ``drop`` accepts; returns how many."""
        removed = 0
        for name in list(self._groups):
            group = self._groups[name]
            for member in list(group.members):
                line = group.members[member]
                kept = deque(item for item in line if not drop(item))
                gone = len(line) - len(kept)
                if gone:
                    removed += gone
                    group.size -= gone
                    if kept:
                        group.members[member] = kept
                    else:
                        del group.members[member]
            if not group.size:
                del self._groups[name]
        self._size -= removed
        return removed
