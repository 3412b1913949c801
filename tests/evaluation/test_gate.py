"""Gate expressions: parsing, checking against summaries and paired comparisons."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.evaluation.runs.compare import Comparison, EvaluatorDelta
from lmdeck.evaluation.runs.gate import Gate, GateError
from lmdeck.evaluation.stats import Difference

SUMMARY = {
    "scores": {"exact": {"mean": 0.92, "low": 0.85, "high": 0.96}},
    "error_rate": 0.01,
    "latency_ms": {"p50": 120.0, "p95": 300.0},
    "cost": 0.5,
}
BASE = {**SUMMARY, "latency_ms": {"p50": 100.0, "p95": 250.0}}


class Sources:
    def summary(self, run_id: str) -> dict[str, Any]:
        return {"cand": SUMMARY, "base": BASE}[run_id]

    def comparison(self, baseline: str, run_id: str) -> Comparison:
        assert (baseline, run_id) == ("base", "cand")
        comparison = Comparison("base", "cand", 100)
        comparison.evaluators["exact"] = EvaluatorDelta(
            "exact", 0.95, 0.92, Difference(-0.03, -0.07, 0.01, 0.2, 100, "mcnemar-exact")
        )
        return comparison


@pytest.mark.parametrize(
    ("text", "passed", "actual"),
    [
        ("exact>=0.9", True, 0.92),
        ("exact>0.95", False, 0.92),
        ("low(exact)>=0.9", False, 0.85),
        ("high(exact) >= 0.9", True, 0.96),
        ("error_rate<=0.02", True, 0.01),
        ("latency_p95<250", False, 300.0),
        ("cost<1", True, 0.5),
        ("delta(exact)>=-0.01 vs base", False, -0.03),
        ("delta_low(exact)>=-0.1 vs base", True, -0.07),
        ("p(exact)<0.05 vs base", False, 0.2),
        ("delta(latency_p50)<=25 vs base", True, 20.0),
        ("exact!=0.92", False, 0.92),
    ],
)
def test_clauses(text: str, passed: bool, actual: float) -> None:
    result = Gate.parse(text).check("cand", Sources())
    (clause,) = result.results
    assert clause.passed is passed and clause.actual == pytest.approx(actual)
    assert result.passed is passed


def test_a_gate_passes_only_when_every_clause_does() -> None:
    gate = Gate.parse("exact>=0.9, delta(exact)>=-0.01")
    assert gate.baselines("base") == {"base"}
    result = gate.check("cand", Sources(), default_baseline="base")
    assert [c.passed for c in result.results] == [True, False] and not result.passed
    assert result.to_dict()["clauses"][1]["reason"] == "-0.03 >= -0.01"


def test_missing_things_fail_with_a_reason() -> None:
    result = Gate.parse("rouge_l>=0.5, delta(exact)>=0").check("cand", Sources())
    reasons = [c.reason for c in result.results]
    assert "no evaluator 'rouge_l'" in reasons[0]
    assert "name the baseline run with 'vs RUN'" in reasons[1]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("exact=>0.9", "not understood"),
        ("median(exact)>1", "unknown function"),
        ("p(cost)<0.05", "needs an evaluator"),
    ],
)
def test_bad_gates(text: str, fragment: str) -> None:
    with pytest.raises(GateError, match=fragment):
        Gate.parse(text)
