"""The pipeline's order, declared by each step and sorted in one place.

Each feature package lists its steps as :class:`StepDeclaration` objects: the step, the
phase it belongs to and, where two steps of one phase depend on each other, the steps it
runs ``after`` or ``before``. :func:`order_steps` sorts the declarations once, at start-up:
by phase first (in the order of :data:`PHASES`), then within a phase by the constraints:
each step keeps its place in declaration order, with the steps it must follow placed just
before it. Steps that depend on each other say so, so their order does not hinge on which
package's list is collected first::

    declarations = [
        StepDeclaration(RecordStep(...), "trace"),
        StepDeclaration(StampBundle(...), "resolve", after=("prompt",)),
        StepDeclaration(RenderPrompt(...), "resolve"),
    ]
    pipeline = build_pipeline(declarations, terminal=dispatcher)
    pipeline.names                          # ['record', 'prompt', 'bundle']

Earlier phases wrap later ones: a step sees the request before every step of a later phase
and the response after them. The phases, outermost first:

``edge``
    Shapes what the client receives on the wire, whatever the inner steps did
    (``stream_usage`` hides the usage chunk a client did not ask for).
``identify``
    Resolves the caller from the API key (``authenticate``); a refusal here is not traced.
``trace``
    Records the trace of everything inside it, however the request ends (``record``), and picks
    the requests a release in shadow mirrors once their answer has gone out (``shadow``).
``resolve``
    Decides what the request asks for: an experiment's variant, the rendered prompt, the
    registry versions it pins and the bundle that names them, then compresses the prompt where
    the route opts in (``experiment``, ``prompt``, ``experiment-pin``, ``bundle``, ``compress``).
``admit``
    Admits the resolved request or refuses it: concurrency caps, rate limits, budgets
    (``concurrency``, ``ratelimit``, ``budget``).
``guard_input``
    Checks the request as it will be sent (after its prompt is rendered), before an answer
    is looked up or paid for (``guard_input``: guardrails and the data policy).
``cache``
    Answers from a cache; a hit skips the phases inside it, so it is neither guarded
    twice nor metered (``cache-exact``, ``cache-semantic``).
``guard_output``
    Checks the upstream's answer before the cache keeps it or the client sees it
    (``guard_output``).
``meter``
    Prices the upstream's token usage onto the trace (``cost``); inside the output guard,
    so that a refused answer's cost is still counted.
``route``
    Picks the router that dispatches the request (``applied-routes``), last before the
    dispatcher.

:func:`order_steps` raises :class:`PipelineOrderError` (naming the steps involved) on an
unknown phase, a duplicate step name, a constraint naming no step or a step of another
phase, and a cycle of constraints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from lmdeck.pipeline.chain import Handler, Pipeline, Step

Phase = Literal[
    "edge", "identify", "trace", "resolve", "admit", "guard_input", "cache", "guard_output", "meter", "route"
]

#: Every phase, outermost first.
PHASES: tuple[Phase, ...] = get_args(Phase)


class PipelineOrderError(ValueError):
    """The step declarations cannot be ordered; the message names the steps and the fix."""


@dataclass(frozen=True)
class StepDeclaration:
    """One step, its phase, and the steps of the same phase it must run after or before.

    >>> StepDeclaration(MeterCost(prices, 1024), "meter").name  # doctest: +SKIP
    'cost'
    """

    step: Step
    phase: Phase
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.step.name


def order_steps(declarations: Iterable[StepDeclaration]) -> list[StepDeclaration]:
    """The declarations sorted by phase, then by their constraints, then by declaration order.

    Raises :class:`PipelineOrderError` on an unknown phase, two steps of one name, an
    ``after``/``before`` naming no step or a step of another phase, or a cycle.
    """
    declared = list(declarations)
    by_name: dict[str, StepDeclaration] = {}
    for decl in declared:
        if decl.phase not in PHASES:
            raise PipelineOrderError(
                f"pipeline step {decl.name!r} declares the unknown phase {decl.phase!r}: use one of {', '.join(PHASES)}"
            )
        if decl.name in by_name:
            raise PipelineOrderError(
                f"two pipeline steps are named {decl.name!r} (phases {by_name[decl.name].phase} and "
                f"{decl.phase}): step names must be unique, rename one"
            )
        by_name[decl.name] = decl
    ordered: list[StepDeclaration] = []
    for phase in PHASES:
        ordered.extend(_sort_phase([d for d in declared if d.phase == phase], by_name))
    return ordered


def _sort_phase(members: list[StepDeclaration], by_name: dict[str, StepDeclaration]) -> list[StepDeclaration]:
    """A stable topological sort: each step in declaration order, just after the steps it must follow."""
    preceding: dict[str, set[str]] = {d.name: set() for d in members}
    for decl in members:
        for anchor, relation in [(a, "after") for a in decl.after] + [(b, "before") for b in decl.before]:
            other = by_name.get(anchor)
            if other is None:
                raise PipelineOrderError(
                    f"pipeline step {decl.name!r} is declared {relation} {anchor!r}, but no step is named "
                    f"{anchor!r} (steps: {', '.join(by_name)}): fix the name or drop the constraint"
                )
            if other.phase != decl.phase:
                raise PipelineOrderError(
                    f"pipeline step {decl.name!r} (phase {decl.phase}) is declared {relation} {anchor!r} "
                    f"(phase {other.phase}): constraints order steps within one phase, and phases are "
                    "already ordered; drop the constraint or move the step to the other phase"
                )
            if relation == "after":
                preceding[decl.name].add(anchor)
            else:
                preceding[anchor].add(decl.name)
    rank = {d.name: i for i, d in enumerate(members)}
    placed: dict[str, StepDeclaration] = {}
    waiting: list[str] = []  # the steps being placed, each waiting on the next

    def place(decl: StepDeclaration) -> None:
        if decl.name in placed:
            return
        if decl.name in waiting:
            cycle = waiting[waiting.index(decl.name) :]
            run_order = [cycle[0], *reversed(cycle[1:]), cycle[0]]
            raise PipelineOrderError(
                f"the pipeline steps {' → '.join(repr(n) for n in run_order)} are declared in a cycle "
                "of after/before constraints: drop one of them"
            )
        waiting.append(decl.name)
        for name in sorted(preceding[decl.name], key=rank.__getitem__):
            place(by_name[name])
        waiting.pop()
        placed[decl.name] = decl

    for decl in members:
        place(decl)
    return list(placed.values())


def build_pipeline(declarations: Iterable[StepDeclaration], terminal: Handler) -> Pipeline:
    """The pipeline of the declared steps, in :func:`order_steps` order, ending at ``terminal``."""
    ordered = order_steps(declarations)
    return Pipeline([d.step for d in ordered], terminal, phases=[d.phase for d in ordered])


def describe_order(names: Sequence[str]) -> str:
    """The order on one line, as the gateway logs it: ``stream_usage → authenticate → …``."""
    return " → ".join(names)
