"""Quality gates for CI: ``exact>=0.9, delta(exact)>=-0.01 vs run_123``.

A gate is clauses joined by commas; each compares a metric of the run being gated with
a number and may name a baseline run with ``vs RUN``. Metrics:

* ``NAME`` or ``mean(NAME)``: the evaluator's mean score; ``low(NAME)`` / ``high(NAME)``
  its 95% interval;
* ``error_rate``, ``latency_p50``, ``latency_p95``, ``cost``: from the run's summary;
* ``delta(NAME)``: mean(run) - mean(baseline) over the paired rows, ``delta_low`` /
  ``delta_high`` its 95% interval, ``p(NAME)`` the paired test's p-value (these need a
  baseline: ``vs RUN``, or the first run of ``lmdeck eval compare``).

>>> gate = Gate.parse("exact>=0.9, delta(exact)>=-0.01 vs run_a")
>>> [c.text for c in gate.clauses]
['exact>=0.9', 'delta(exact)>=-0.01 vs run_a']
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lmdeck.evaluation.runs.compare import Comparison


class GateError(ValueError):
    """The gate cannot be read; the message says how to write it."""


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_CLAUSE = re.compile(
    r"^\s*(?:(?P<fn>[a-z_]+)\(\s*(?P<arg>[\w.\-]+)\s*\)|(?P<name>[\w.\-]+))\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<num>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    r"(?:\s+vs\s+(?P<vs>[\w.\-]+))?\s*$"
)
SUMMARY_METRICS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "error_rate": lambda s: s.get("error_rate"),
    "latency_p50": lambda s: (s.get("latency_ms") or {}).get("p50"),
    "latency_p95": lambda s: (s.get("latency_ms") or {}).get("p95"),
    "cost": lambda s: s.get("cost"),
}
RUN_FUNCTIONS = {"mean", "low", "high"}
PAIRED_FUNCTIONS = {"delta", "delta_low", "delta_high", "p"}


@dataclass(frozen=True)
class Clause:
    text: str
    function: str
    metric: str
    op: str
    threshold: float
    baseline: str | None

    @property
    def paired(self) -> bool:
        return self.function in PAIRED_FUNCTIONS


@dataclass(frozen=True)
class ClauseResult:
    clause: Clause
    actual: float | None
    passed: bool
    reason: str
    #: True when the clause could not be evaluated (no such evaluator in the run, no baseline named): a broken
    #: gate, which CI must tell apart from a regression (``lmdeck eval gate`` exits 2 rather than 1).
    error: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "clause": self.clause.text,
            "actual": self.actual,
            "passed": self.passed,
            "reason": self.reason,
            "error": self.error,
        }


class GateSources(Protocol):
    def summary(self, run_id: str) -> dict[str, Any]: ...

    def comparison(self, baseline: str, run_id: str) -> Comparison: ...


@dataclass(frozen=True)
class GateResult:
    run_id: str
    results: list[ClauseResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def configuration_error(self) -> bool:
        """Some clause could not be evaluated at all (see :attr:`ClauseResult.error`)."""
        return any(r.error for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "passed": self.passed,
            "configuration_error": self.configuration_error,
            "clauses": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class Gate:
    clauses: list[Clause]

    @classmethod
    def parse(cls, text: str) -> Gate:
        clauses = []
        for part in text.split(","):
            if not part.strip():
                continue
            match = _CLAUSE.match(part)
            if not match:
                raise GateError(
                    f"gate clause {part.strip()!r} is not understood: write METRIC OP NUMBER [vs RUN], "
                    "e.g. 'exact>=0.9' or 'delta(exact)>=-0.01 vs run_123'"
                )
            function = match.group("fn") or "mean"
            metric = match.group("arg") or match.group("name")
            if function not in RUN_FUNCTIONS | PAIRED_FUNCTIONS:
                known = ", ".join(sorted(RUN_FUNCTIONS | PAIRED_FUNCTIONS))
                raise GateError(f"gate clause {part.strip()!r}: unknown function {function!r} (known: {known})")
            if function in PAIRED_FUNCTIONS and metric in SUMMARY_METRICS and function != "delta":
                raise GateError(f"gate clause {part.strip()!r}: {function}() needs an evaluator, not {metric!r}")
            clauses.append(
                Clause(
                    part.strip(),
                    function,
                    metric,
                    match.group("op"),
                    float(match.group("num")),
                    match.group("vs"),
                )
            )
        if not clauses:
            raise GateError("the gate is empty: give at least one clause such as 'exact>=0.9'")
        return cls(clauses)

    def baselines(self, default: str | None = None) -> set[str]:
        return {c.baseline or default for c in self.clauses if c.paired and (c.baseline or default)}  # type: ignore[misc]

    def check(self, run_id: str, sources: GateSources, default_baseline: str | None = None) -> GateResult:
        summary = sources.summary(run_id)
        results = []
        for clause in self.clauses:
            try:
                actual = self._actual(clause, run_id, summary, sources, default_baseline)
            except LookupError as exc:
                results.append(ClauseResult(clause, None, False, str(exc), error=True))
                continue
            passed = actual is not None and not math.isnan(actual) and _OPS[clause.op](actual, clause.threshold)
            shown = "n/a" if actual is None else f"{actual:.4g}"
            results.append(ClauseResult(clause, actual, passed, f"{shown} {clause.op} {clause.threshold:g}"))
        return GateResult(run_id, results)

    def _actual(
        self,
        clause: Clause,
        run_id: str,
        summary: dict[str, Any],
        sources: GateSources,
        default_baseline: str | None,
    ) -> float | None:
        if not clause.paired:
            if clause.metric in SUMMARY_METRICS:
                return SUMMARY_METRICS[clause.metric](summary)
            score = (summary.get("scores") or {}).get(clause.metric)
            if score is None:
                raise LookupError(f"run {run_id} has no evaluator {clause.metric!r}")
            return float(score[clause.function])
        baseline = clause.baseline or default_baseline
        if baseline is None:
            raise LookupError(f"{clause.text}: name the baseline run with 'vs RUN'")
        if clause.metric in SUMMARY_METRICS:
            mine = SUMMARY_METRICS[clause.metric](summary)
            theirs = SUMMARY_METRICS[clause.metric](sources.summary(baseline))
            return None if mine is None or theirs is None else mine - theirs
        comparison = sources.comparison(baseline, run_id)
        delta = comparison.evaluators.get(clause.metric)
        if delta is None:
            raise LookupError(f"runs {baseline} and {run_id} do not share an evaluator {clause.metric!r}")
        test = delta.test
        return {"delta": test.delta, "delta_low": test.low, "delta_high": test.high, "p": test.p_value}[clause.function]
