"""Drift tests as plugins: the ``lmdeck.drift_tests`` entry-point group, built-ins included.

A drift test reads the two windows' samples (and their embeddings) and returns its results::

    class LongAnswers:
        name = "long_answers"
        signal = "output"
        default = True

        def run(self, data: DriftData) -> list[DriftTestResult]: ...

    def register(registry: DriftTestRegistry) -> None:      # [project.entry-points."lmdeck.drift_tests"]
        registry.add(LongAnswers())

A test that lacks data returns a result with ``skipped`` set (:func:`skipped`) rather than raising.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from lmdeck.monitoring.drift.samples import DriftSamples
from lmdeck.protocol.drift import DriftTestResult, Signal

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class DriftData:
    """What a test reads: the samples, the unit-length embeddings of their prompts and answers
    (reference, current; None when no embedding model is installed), and the report's settings."""

    samples: DriftSamples
    prompt_vectors: tuple[Matrix, Matrix] | None
    answer_vectors: tuple[Matrix, Matrix] | None
    min_samples: int
    permutations: int
    seed: int


class DriftTest(Protocol):
    """A two-sample test of one signal; ``default`` tests run unless a report names its tests."""

    name: str
    signal: Signal
    default: bool

    def run(self, data: DriftData) -> list[DriftTestResult]: ...


@dataclass
class DriftTestRegistry:
    tests: dict[str, DriftTest] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def add(self, test: DriftTest) -> None:
        self.tests[test.name] = test

    def defaults(self) -> list[str]:
        return [name for name, test in self.tests.items() if test.default]

    def select(self, names: Iterable[str] | None) -> list[DriftTest]:
        """The tests named (all defaults when ``names`` is None); a ``KeyError`` naming the choices otherwise."""
        if names is None:
            return [self.tests[n] for n in self.defaults()]
        chosen = []
        for name in names:
            if name not in self.tests:
                why = self.unavailable.get(name)
                raise KeyError(
                    f"no drift test {name!r}: " + (why if why else f"choose from {', '.join(sorted(self.tests))}")
                )
            chosen.append(self.tests[name])
        return chosen


def skipped(
    name: str, signal: Signal, method: str, statistic_name: str, why: str, n_reference: int, n_current: int
) -> DriftTestResult:
    """A result saying why ``name`` did not run."""
    return DriftTestResult(
        name=name,
        signal=signal,
        method=method,
        statistic_name=statistic_name,
        n_reference=n_reference,
        n_current=n_current,
        skipped=why,
    )
