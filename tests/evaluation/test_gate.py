"""Gate expressions: parsing, checking against summaries and paired comparisons."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.evaluation.runs.compare import Comparison, EvaluatorDelta
from lmdeck.evaluation.runs.gate import Gate, GateError
from lmdeck.evaluation.stats import Difference, mean_interval, paired_test

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


class RunsOf:
    """Gate sources built from real per-row scores: the summary and the paired test lmdeck computes."""

    def __init__(self, base: list[float], cand: list[float]) -> None:
        self.rows = {"base": base, "cand": cand}

    def summary(self, run_id: str) -> dict[str, Any]:
        values = self.rows[run_id]
        return {"rows": len(values), "scores": {"exact": mean_interval(values).to_dict()}}

    def comparison(self, baseline: str, run_id: str) -> Comparison:
        a, b = self.rows[baseline], self.rows[run_id]
        comparison = Comparison(baseline, run_id, len(a))
        comparison.evaluators["exact"] = EvaluatorDelta("exact", sum(a) / len(a), sum(b) / len(b), paired_test(a, b))
        return comparison


def test_clauses_state_their_semantics() -> None:
    gate = Gate.parse("exact>=0.9, low(exact)>=0.9, delta_low(exact)>=-0.01, p(exact)<0.05, error_rate<0.1")
    assert [c.semantics for c in gate.clauses] == [
        "point estimate",
        "interval bound",
        "interval bound",
        "p-value",
        "point estimate",
    ]


def test_nine_of_ten_passes_a_point_clause_with_a_warning_and_fails_the_interval_clause() -> None:
    sources = RunsOf([1.0] * 10, [1.0] * 9 + [0.0])
    point, bound = Gate.parse("exact>=0.9, low(exact)>=0.9").check("cand", sources).results
    assert point.passed and point.warning and "[0.5958, 0.9821] crosses 0.9" in point.warning
    assert "low(exact)>=0.9" in point.warning
    assert not bound.passed and bound.actual == pytest.approx(0.59585, abs=1e-4) and bound.warning is None
    shown = point.to_dict()
    assert shown["semantics"] == "point estimate" and shown["estimate"] == pytest.approx(0.9)
    assert (shown["low"], shown["high"]) == pytest.approx((0.59585, 0.98212), abs=1e-4)


def test_a_gate_on_too_few_rows_fails_with_insufficient_evidence() -> None:
    sources = RunsOf([0.0] * 4, [1.0] * 4)
    result = Gate.parse("exact>=0.5, low(exact)>=0.1, p(exact)<0.05").check("cand", sources, "base")
    assert not result.passed and not result.configuration_error
    assert all("insufficient evidence: 4 rows" in r.reason for r in result.results)
    assert Gate.parse("exact>=0.5", min_rows=3).check("cand", sources).passed


@pytest.mark.parametrize("improved", [1, 5])
@pytest.mark.parametrize("scores", [(0.0, 1.0), (0.4, 0.6)])
def test_one_or_five_improved_rows_never_pass_a_significance_gate(improved: int, scores: tuple[float, float]) -> None:
    low, high = scores
    base = [low] * improved + [0.5] * 195
    cand = [high] * improved + [0.5] * 195
    gate = Gate.parse("p(exact)<0.05 vs base, delta_low(exact)>0 vs base")
    result = gate.check("cand", RunsOf(base, cand))
    assert [r.passed for r in result.results] == [False, False], result.to_dict()


def test_an_undefined_interval_fails_an_interval_clause() -> None:
    sources = RunsOf([0.5] * 20, [0.7] * 20)  # every value equal: no spread, no interval
    (clause,) = Gate.parse("low(exact)>=0.6").check("cand", sources).results
    assert not clause.passed and "insufficient evidence" in clause.reason and not clause.error
