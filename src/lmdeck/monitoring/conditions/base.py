"""The contract of a rule kind: ``Condition.read(signals, rule, now) -> [Reading, ...]``, one per group.

A reading says, for one group of the rule's ``signal.by`` (``{}`` when the rule has no ``by``), the
value at ``now``, whether the alert condition holds (``active``: an alert starts or stays pending) and
whether it is over (``cleared``: a firing alert resolves). The two differ where a rule has hysteresis
(a threshold rule's ``clear_threshold``, a burn-rate rule's short window). A group without enough
traffic in the window gives no reading: its alert, if any, keeps its state.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lmdeck.protocol.alerts import AlertRuleSpec, Comparison, SignalSpec
from lmdeck.tracing.signals import SignalError, Signals, Totals

COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class ConditionError(ValueError):
    """A rule cannot be evaluated as written (unknown detector, bad dimension); the message names the fix."""


@dataclass(frozen=True)
class Reading:
    """One group's verdict at one evaluation (see the module docs)."""

    group: dict[str, Any]
    value: float | None
    active: bool
    cleared: bool
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


class Condition(Protocol):
    """Reads a rule's signal at ``now`` (epoch seconds) and judges each group; blocking (database reads)."""

    def read(self, signals: Signals, rule: AlertRuleSpec, now: float) -> list[Reading]: ...


def group_totals(
    signals: Signals, signal: SignalSpec, since: float, until: float, quantiles: Sequence[float] = ()
) -> list[Totals]:
    """The signal's totals over ``[since, until)``, one per group of ``signal.by``; errors name the fix."""
    try:
        return signals.totals(by=signal.by, since=since, until=until, where=signal.where, quantiles=quantiles)
    except SignalError as exc:
        raise ConditionError(f"signal.{exc.param}: {exc.detail}") from None


def group_label(group: dict[str, Any]) -> str:
    """``" (target=openai:gpt-4o)"`` for a group, ``""`` for the whole signal."""
    return f" ({', '.join(f'{k}={v}' for k, v in group.items())})" if group else ""
