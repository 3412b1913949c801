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

The gateway does not list its steps by hand: each step is declared with its phase and
:func:`lmdeck.pipeline.order.build_pipeline` sorts them once, at start-up.

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
    """Steps in order, ending at a terminal handler that calls the upstream; fixed once built.

    ``phases`` (one per step, when the steps were sorted by phase) is only shown, as in
    :attr:`layout`: the order is the order of ``steps``.
    """

    def __init__(self, steps: Sequence[Step], terminal: Handler, *, phases: Sequence[str] | None = None) -> None:
        if phases is not None and len(phases) != len(steps):
            raise ValueError(f"{len(steps)} steps but {len(phases)} phases: give one phase per step")
        self._steps: tuple[Step, ...] = tuple(steps)
        self._phases: tuple[str, ...] = tuple(phases) if phases is not None else ("",) * len(self._steps)
        self._chain: Handler = self._build(terminal)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._steps]

    @property
    def layout(self) -> list[tuple[str, str]]:
        """``(phase, step name)`` for each step in order; the phase is ``""`` where none was given."""
        return [(phase, step.name) for phase, step in zip(self._phases, self._steps, strict=True)]

    def _build(self, terminal: Handler) -> Handler:
        handler = terminal
        for step in reversed(self._steps):
            handler = _bind(step, handler)
        return handler

    async def run(self, ctx: RequestContext) -> Result:
        return await self._chain(ctx)


def _bind(step: Step, call_next: Handler) -> Handler:
    async def handler(ctx: RequestContext) -> Result:
        return await step(ctx, call_next)

    return handler
