"""The fine-tuning gate: is the adapter good enough to register?

Each dataset the job evaluates on (the held-out ``validation`` split, the ``regression`` set) has two
finished eval runs of the same dataset version: the base model's and the adapter's. The gate text
for that dataset (:class:`~lmdeck.protocol.fine_tuning.FineTuneGate`, written in the eval gate
language of :mod:`lmdeck.evaluation.runs.gate`) is judged on the adapter's run with the base's run
as its baseline, through the paired comparison every eval gate uses::

    outcome = judge(FineTuneGate(), "exact", {"validation": RunPair(base, base_rows, adapter, adapter_rows)})
    outcome.passed, outcome.validation["clauses"][0]["reason"], outcome.metrics["validation.exact.adapter"]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lmdeck.evaluation.runs.compare import Comparison, compare_runs
from lmdeck.evaluation.runs.gate import Gate, GateError
from lmdeck.evaluation.runs.store import RunRecord
from lmdeck.protocol.evaluation import RowResult
from lmdeck.protocol.fine_tuning import FineTuneGate, GateOutcome

#: The datasets a job is gated on, in the order they are judged.
GATED_SETS = ("validation", "regression")


@dataclass(frozen=True)
class RunPair:
    """The base model's and the adapter's finished runs of one dataset version, with their rows."""

    base: RunRecord
    base_rows: Sequence[RowResult]
    adapter: RunRecord
    adapter_rows: Sequence[RowResult]


class _Pair:
    """Gate sources over one pair (``vs`` any other run is unknown)."""

    def __init__(self, pair: RunPair, comparison: Comparison) -> None:
        self.pair = pair
        self.compared = comparison

    def summary(self, run_id: str) -> dict[str, Any]:
        run = self.pair.adapter if run_id == self.pair.adapter.id else self.pair.base
        return run.summary or {}

    def comparison(self, baseline: str, run_id: str) -> Comparison:
        if baseline != self.pair.base.id:
            raise GateError(f"a fine-tuning gate compares with the base model's run only, not {baseline!r}")
        return self.compared


def check_gate(gate: FineTuneGate, evaluator: str) -> None:
    """Raise :class:`GateError` (the message says how to write it) when a gate text cannot be read."""
    for text in gate.expressions(evaluator):
        named = [c.text for c in Gate.parse(text, min_rows=gate.min_rows).clauses if c.baseline]
        if named:
            raise GateError(
                f"{named[0]!r} names a baseline run: a fine-tuning gate always compares with the base model's run, "
                "so leave out `vs …`"
            )


def judge(gate: FineTuneGate, evaluator: str, pairs: Mapping[str, RunPair]) -> GateOutcome:
    """Judge each dataset of ``pairs`` (keys from :data:`GATED_SETS`) with its gate text.

    The outcome passes when every judged gate passes; its ``metrics`` hold, per dataset and
    evaluator, the base's and the adapter's means and their paired difference.
    """
    texts = dict(zip(GATED_SETS, gate.expressions(evaluator), strict=True))
    outcome = GateOutcome(passed=True)
    for name in GATED_SETS:
        pair = pairs.get(name)
        if pair is None:
            continue
        comparison = compare_runs(pair.base, pair.base_rows, pair.adapter, pair.adapter_rows)
        result = Gate.parse(texts[name], min_rows=gate.min_rows).check(
            pair.adapter.id, _Pair(pair, comparison), pair.base.id
        )
        setattr(outcome, name, {"gate": texts[name], **result.to_dict()})
        outcome.passed = outcome.passed and result.passed
        outcome.runs[name] = {"base": pair.base.id, "adapter": pair.adapter.id}
        for key, delta in comparison.evaluators.items():
            outcome.metrics[f"{name}.{key}.base"] = delta.mean_a
            outcome.metrics[f"{name}.{key}.adapter"] = delta.mean_b
            outcome.metrics[f"{name}.{key}.delta"] = delta.mean_b - delta.mean_a
    return outcome
