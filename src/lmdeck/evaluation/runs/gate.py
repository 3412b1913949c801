"""Quality gates for CI: ``low(exact)>=0.9, delta_low(exact)>=-0.01 vs run_123``.

A gate is clauses joined by commas; each compares a metric of the run being gated with
a number and may name a baseline run with ``vs RUN``. Each clause has one of three semantics:

* interval bound (recommended): ``low(NAME)`` / ``high(NAME)``, the bounds of the evaluator's
  95% interval, and ``delta_low(NAME)`` / ``delta_high(NAME)``, the bounds of the paired
  difference's interval against a baseline. ``low(exact)>=0.9`` passes only when the data show,
  at 95% confidence, that the run is at least that good;
* point estimate: ``NAME`` or ``mean(NAME)`` (the evaluator's mean), ``delta(NAME)``
  (mean(run) - mean(baseline) over the paired rows), and ``error_rate``, ``latency_p50``,
  ``latency_p95``, ``cost`` from the run's summary. A point estimate says nothing about noise:
  9 right out of 10 passes ``exact>=0.9`` although the interval reaches down to 0.6, so the
  result carries a warning whenever the estimate passes but the interval crosses the threshold;
* p-value: ``p(NAME)``, the paired test's two-sided p-value (McNemar's exact test, or a
  sign-flip permutation test, exact at small sizes).

Paired clauses need a baseline: ``vs RUN``, or the first run of ``lmdeck eval compare``. A
gate on fewer than ``min_rows`` rows (:data:`MIN_GATE_ROWS` by default) fails every clause with
"insufficient evidence", and so does an interval-bound clause whose interval is undefined.

>>> gate = Gate.parse("low(exact)>=0.9, delta_low(exact)>=-0.01 vs run_a")
>>> [c.semantics for c in gate.clauses]
['interval bound', 'interval bound']
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
INTERVAL_FUNCTIONS = {"low", "high", "delta_low", "delta_high"}
#: A gate on fewer rows than this fails with "insufficient evidence" (whatever its clauses say).
MIN_GATE_ROWS = 10


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

    @property
    def semantics(self) -> str:
        """What the clause compares: 'interval bound', 'point estimate' or 'p-value'."""
        if self.function in INTERVAL_FUNCTIONS:
            return "interval bound"
        return "p-value" if self.function == "p" else "point estimate"


@dataclass(frozen=True)
class Evidence:
    """What a clause was judged on: the estimate, its interval (None when undefined or not available), rows."""

    estimate: float | None
    low: float | None = None
    high: float | None = None
    rows: int | None = None
    method: str | None = None


@dataclass(frozen=True)
class ClauseResult:
    clause: Clause
    actual: float | None
    passed: bool
    reason: str
    #: True when the clause could not be evaluated (no such evaluator in the run, no baseline named): a broken
    #: gate, which CI must tell apart from a regression (``lmdeck eval gate`` exits 2 rather than 1).
    error: bool = False
    evidence: Evidence | None = None
    #: Set when a point-estimate clause passes although its interval crosses the threshold.
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        evidence = self.evidence or Evidence(None)
        return {
            "clause": self.clause.text,
            "semantics": self.clause.semantics,
            "actual": self.actual,
            "passed": self.passed,
            "reason": self.reason,
            "error": self.error,
            "estimate": evidence.estimate,
            "low": evidence.low,
            "high": evidence.high,
            "rows": evidence.rows,
            "method": evidence.method,
            "warning": self.warning,
        }


class GateSources(Protocol):
    def summary(self, run_id: str) -> dict[str, Any]: ...

    def comparison(self, baseline: str, run_id: str) -> Comparison: ...


@dataclass(frozen=True)
class GateResult:
    run_id: str
    results: list[ClauseResult]
    min_rows: int = MIN_GATE_ROWS

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
            "min_rows": self.min_rows,
            "clauses": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class Gate:
    clauses: list[Clause]
    min_rows: int = MIN_GATE_ROWS

    @classmethod
    def parse(cls, text: str, *, min_rows: int = MIN_GATE_ROWS) -> Gate:
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
        return cls(clauses, min_rows)

    def baselines(self, default: str | None = None) -> set[str]:
        return {c.baseline or default for c in self.clauses if c.paired and (c.baseline or default)}  # type: ignore[misc]

    def check(self, run_id: str, sources: GateSources, default_baseline: str | None = None) -> GateResult:
        summary = sources.summary(run_id)
        results = []
        for clause in self.clauses:
            try:
                evidence = self._evidence(clause, run_id, summary, sources, default_baseline)
            except LookupError as exc:
                results.append(ClauseResult(clause, None, False, str(exc), error=True))
                continue
            results.append(self._judge(clause, evidence))
        return GateResult(run_id, results, self.min_rows)

    def _judge(self, clause: Clause, evidence: Evidence) -> ClauseResult:
        actual = _pick(clause, evidence)
        if evidence.rows is not None and evidence.rows < self.min_rows:
            reason = (
                f"insufficient evidence: {evidence.rows} rows, fewer than the {self.min_rows} a gate needs; "
                "add rows to the dataset"
            )
            return ClauseResult(clause, actual, False, reason, evidence=evidence)
        if actual is None or math.isnan(actual):
            why = (
                "the interval is undefined (too few distinct values)"
                if clause.semantics == "interval bound"
                else "no value"
            )
            return ClauseResult(clause, actual, False, f"insufficient evidence: {why}", evidence=evidence)
        passed = _OPS[clause.op](actual, clause.threshold)
        reason = f"{actual:.4g} {clause.op} {clause.threshold:g}"
        warning = None
        low, high = evidence.low, evidence.high
        crosses = low is not None and high is not None and low <= clause.threshold <= high
        if passed and clause.semantics == "point estimate" and crosses:
            bound = _bound_for(clause)
            warning = (
                f"the point estimate passes but the 95% interval [{low:.4g}, {high:.4g}] crosses "
                f"{clause.threshold:g}: write {bound}({clause.metric}){clause.op}{clause.threshold:g} to require evidence"
            )
        return ClauseResult(clause, actual, passed, reason, evidence=evidence, warning=warning)

    def _evidence(
        self,
        clause: Clause,
        run_id: str,
        summary: dict[str, Any],
        sources: GateSources,
        default_baseline: str | None,
    ) -> Evidence:
        rows = summary.get("rows")
        if not clause.paired:
            if clause.metric in SUMMARY_METRICS:
                return Evidence(SUMMARY_METRICS[clause.metric](summary), rows=rows)
            score = (summary.get("scores") or {}).get(clause.metric)
            if score is None:
                raise LookupError(f"run {run_id} has no evaluator {clause.metric!r}")
            return Evidence(
                _number(score.get("mean")),
                _number(score.get("low")),
                _number(score.get("high")),
                rows if rows is not None else score.get("n"),
                score.get("method"),
            )
        baseline = clause.baseline or default_baseline
        if baseline is None:
            raise LookupError(f"{clause.text}: name the baseline run with 'vs RUN'")
        if clause.metric in SUMMARY_METRICS:
            mine = SUMMARY_METRICS[clause.metric](summary)
            theirs = SUMMARY_METRICS[clause.metric](sources.summary(baseline))
            return Evidence(None if mine is None or theirs is None else mine - theirs, rows=rows)
        comparison = sources.comparison(baseline, run_id)
        delta = comparison.evaluators.get(clause.metric)
        if delta is None:
            raise LookupError(f"runs {baseline} and {run_id} do not share an evaluator {clause.metric!r}")
        test = delta.test
        if clause.function == "p":
            return Evidence(test.p_value, rows=comparison.rows, method=test.method)
        return Evidence(test.delta, test.low, test.high, comparison.rows, test.method)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _pick(clause: Clause, evidence: Evidence) -> float | None:
    if clause.function in ("low", "delta_low"):
        return evidence.low
    if clause.function in ("high", "delta_high"):
        return evidence.high
    return evidence.estimate


def _bound_for(clause: Clause) -> str:
    lower = clause.op in (">=", ">")
    if clause.function == "delta":
        return "delta_low" if lower else "delta_high"
    return "low" if lower else "high"
