"""The request pipeline: an explicit, ordered list of small steps.

Each step wraps the rest of the pipeline, so it can act before the call
(refuse, rewrite, answer from cache) and after it (settle tokens, check the
output, record the trace)::

    class Stamp:
        name = "stamp"

        async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
            ctx.trace.tags.append("stamped")
            return await call_next(ctx)

    pipeline = Pipeline([Authenticate(...), Stamp()], terminal=dispatcher)
    pipeline.insert_after("authenticate", RateLimit(...))

A streamed result is wrapped, not consumed: a step that must see the output
of a stream wraps ``result.chunks`` in its own async generator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from lmdeck.pipeline.context import RequestContext, Result

Handler = Callable[[RequestContext], Awaitable[Result]]


class Step(Protocol):
    name: str

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result: ...


class Pipeline:
    """Steps in order, ending at a terminal handler that calls the upstream."""

    def __init__(self, steps: Sequence[Step], terminal: Handler) -> None:
        self._steps: list[Step] = list(steps)
        self._terminal = terminal
        self._chain: Handler = self._build()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._steps]

    def _index(self, name: str) -> int:
        for i, step in enumerate(self._steps):
            if step.name == name:
                return i
        raise KeyError(f"no pipeline step named {name!r} (steps: {', '.join(self.names)})")

    def insert_before(self, name: str, step: Step) -> None:
        self._steps.insert(self._index(name), step)
        self._chain = self._build()

    def insert_after(self, name: str, step: Step) -> None:
        self._steps.insert(self._index(name) + 1, step)
        self._chain = self._build()

    def append(self, step: Step) -> None:
        self._steps.append(step)
        self._chain = self._build()

    def replace(self, name: str, step: Step) -> None:
        self._steps[self._index(name)] = step
        self._chain = self._build()

    def _build(self) -> Handler:
        handler = self._terminal
        for step in reversed(self._steps):
            handler = _bind(step, handler)
        return handler

    async def run(self, ctx: RequestContext) -> Result:
        return await self._chain(ctx)


def _bind(step: Step, call_next: Handler) -> Handler:
    async def handler(ctx: RequestContext) -> Result:
        return await step(ctx, call_next)

    return handler
