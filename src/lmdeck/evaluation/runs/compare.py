"""Comparing two runs of one dataset row by row: per-evaluator deltas, a paired test, the rows that changed.

comparison = compare_runs(run_a, rows_a, run_b, rows_b)
comparison.evaluators["exact"].test.p_value     # McNemar for 0/1 scores, paired bootstrap otherwise
comparison.changed[0].idx                        # a row whose scores differ between the runs
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lmdeck.evaluation.runs.store import RunRecord
from lmdeck.evaluation.stats import Difference, paired_test
from lmdeck.protocol import APIError
from lmdeck.protocol.evaluation import RowResult


@dataclass(frozen=True)
class EvaluatorDelta:
    key: str
    mean_a: float
    mean_b: float
    test: Difference

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "mean_a": self.mean_a, "mean_b": self.mean_b, **self.test.to_dict()}


@dataclass(frozen=True)
class ChangedRow:
    idx: int
    input: Any
    expected: Any
    output_a: str | None
    output_b: str | None
    scores_a: dict[str, float | None]
    scores_b: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Comparison:
    run_a: str
    run_b: str
    rows: int
    evaluators: dict[str, EvaluatorDelta] = field(default_factory=dict)
    changed: list[ChangedRow] = field(default_factory=list)
    changed_total: int = 0
    summary_a: dict[str, Any] = field(default_factory=dict)
    summary_b: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "rows": self.rows,
            "evaluators": {k: d.to_dict() for k, d in self.evaluators.items()},
            "changed": [c.to_dict() for c in self.changed],
            "changed_total": self.changed_total,
            "summary_a": self.summary_a,
            "summary_b": self.summary_b,
        }


def _value(row: RowResult, key: str) -> float:
    return row.value(key) or 0.0


def compare_runs(
    a: RunRecord, rows_a: Sequence[RowResult], b: RunRecord, rows_b: Sequence[RowResult], *, max_changed: int = 100
) -> Comparison:
    """Pair the runs' rows by position in the dataset and test each shared evaluator."""
    if a.dataset_digest != b.dataset_digest:
        raise APIError(
            400,
            f"runs {a.id} and {b.id} used different datasets ({a.dataset}@{a.dataset_version} and "
            f"{b.dataset}@{b.dataset_version}): compare runs of the same dataset version",
            code="not_comparable",
        )
    by_idx_b = {r.idx: r for r in rows_b}
    pairs = [(r, by_idx_b[r.idx]) for r in sorted(rows_a, key=lambda r: r.idx) if r.idx in by_idx_b]
    shared = set(_keys(rows_b))
    keys = [k for k in _keys(rows_a) if k in shared]
    comparison = Comparison(a.id, b.id, len(pairs), summary_a=a.summary or {}, summary_b=b.summary or {})
    for key in keys:
        values_a = [_value(x, key) for x, _ in pairs]
        values_b = [_value(y, key) for _, y in pairs]
        n = len(pairs)
        comparison.evaluators[key] = EvaluatorDelta(
            key,
            math.fsum(values_a) / n if n else math.nan,
            math.fsum(values_b) / n if n else math.nan,
            paired_test(values_a, values_b),
        )
    for x, y in pairs:
        if any(_value(x, k) != _value(y, k) for k in keys):
            comparison.changed_total += 1
            if len(comparison.changed) < max_changed:
                comparison.changed.append(
                    ChangedRow(
                        x.idx,
                        x.input,
                        x.expected,
                        x.output,
                        y.output,
                        {k: x.value(k) for k in keys},
                        {k: y.value(k) for k in keys},
                    )
                )
    return comparison


def _keys(rows: Sequence[RowResult]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.scores:
            seen.setdefault(key, None)
    return list(seen)
