"""Who a provider call is made for, so that capacity several callers share can be divided fairly.

The gateway's concurrency step sets it for the request it passes on; a provider that shares something
among callers (the local engine's batch) reads it when it queues the work::

    token = CURRENT_CALLER.set(Caller(key="k_1", team="t_red"))
    try:
        await call_next(ctx)                      # LocalProvider queues under group "team:t_red", member "k_1"
    finally:
        CURRENT_CALLER.reset(token)

Unset (a provider called outside the gateway's pipeline), every call shares one anonymous group.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """An API key and its team; a key without a team is a group of its own."""

    key: str
    team: str | None = None

    @property
    def group(self) -> str:
        return f"team:{self.team}" if self.team else f"key:{self.key}"


CURRENT_CALLER: ContextVar[Caller | None] = ContextVar("lmdeck_current_caller", default=None)
