"""The anomaly detector contract: ``Detector.evaluate(series) -> Finding``.

A detector is built by name from :class:`DetectorRegistry` with a ``sensitivity`` and its own options,
and judges the newest point of a :class:`Series` against the baseline it learns from the points before::

    registry = load_detectors()
    detector = registry.create("ewma", sensitivity="medium", options={"alpha": 0.1})
    finding = detector.evaluate(Series(step=300, times=[...], values=[...]))
    if finding.anomalous:
        print(finding.value, "outside", finding.lower, finding.upper, finding.reason)

Detectors register with ``register(registry)`` hooks in the ``lmdeck.anomaly_detectors`` entry-point
group (built-ins too), like guardrails and evaluators do. An alert rule of kind ``anomaly``
(:mod:`lmdeck.monitoring.rules`) builds its detector once and calls :meth:`Detector.evaluate` on every
evaluation with the signal's series up to that moment; a detector keeps no state between calls
that the series does not hold, so an evaluation replayed on the same series gives the same finding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol, runtime_checkable

from lmdeck.plugins import call_hooks

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lmdeck.anomaly_detectors"

#: How readily a detector fires: "low" fires on the largest deviations only, "high" on smaller ones.
Sensitivity = Literal["low", "medium", "high"]
SENSITIVITIES: tuple[str, ...] = ("low", "medium", "high")


class DetectorError(ValueError):
    """A detector cannot be built as asked (unknown name, bad option); the message names the fix."""


@dataclass(frozen=True)
class Series:
    """Evenly stepped values of one signal, oldest first.

    ``times`` are the steps' starts in epoch seconds, ``step`` their width in seconds; a step with no
    traffic is absent (its time is missing), not zero, so a detector sees gaps. ``values`` are in the
    signal's unit (a rate in [0, 1], milliseconds, micro-dollars per hour...).
    """

    step: int
    times: Sequence[float]
    values: Sequence[float]

    def __post_init__(self) -> None:
        if len(self.times) != len(self.values):
            raise ValueError(f"times ({len(self.times)}) and values ({len(self.values)}) differ in length")

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Finding:
    """A detector's verdict on the newest point of a series.

    ``anomalous`` is the verdict; ``value`` the judged point (None: the series was empty);
    ``expected`` the baseline's estimate and ``lower``/``upper`` the band outside which a point is
    anomalous (None where the detector has none, or too little history: then ``anomalous`` is False
    and ``reason`` says so); ``score`` how far outside, in the detector's own unit (robust z-score,
    change-point cost...), larger meaning more unusual; ``at`` the judged point's time.
    """

    anomalous: bool
    value: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float = 0.0
    at: float | None = None
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "anomalous": self.anomalous,
            "value": self.value,
            "expected": self.expected,
            "lower": self.lower,
            "upper": self.upper,
            "score": self.score,
            "at": self.at,
            "reason": self.reason,
            "detail": self.detail,
        }


@runtime_checkable
class Detector(Protocol):
    """Judges the newest point of a series against a baseline learned from the points before it."""

    def evaluate(self, series: Series) -> Finding:
        """The finding for ``series``' last point; never raises on short or empty series (not anomalous)."""
        ...


#: Builds a detector as ``factory(sensitivity=..., **options)``; a detector class is its own factory.
DetectorFactory = Callable[..., Detector]


class DetectorRegistry:
    """Detector factories by name."""

    def __init__(self) -> None:
        self._factories: dict[str, DetectorFactory] = {}
        self.unavailable: dict[str, str] = {}

    def add(self, name: str, factory: DetectorFactory) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def create(
        self, name: str, *, sensitivity: Sensitivity = "medium", options: Mapping[str, Any] | None = None
    ) -> Detector:
        """A detector ``name`` built with ``sensitivity`` and ``options``; :class:`DetectorError` names the fix."""
        if sensitivity not in SENSITIVITIES:
            raise DetectorError(f"sensitivity is one of {', '.join(SENSITIVITIES)}, got {sensitivity!r}")
        factory = self._factories.get(name)
        if factory is None:
            if name in self.unavailable:
                raise DetectorError(f"anomaly detector {name!r} is unavailable: {self.unavailable[name]}")
            raise DetectorError(f"unknown anomaly detector {name!r}; known: {', '.join(self.names()) or 'none'}")
        try:
            return factory(sensitivity=sensitivity, **dict(options or {}))
        except TypeError as exc:
            raise DetectorError(f"anomaly detector {name!r}: {exc}") from None


def load_detectors(names: Iterable[str] | None = None) -> DetectorRegistry:
    """The registry filled by every ``lmdeck.anomaly_detectors`` entry point (or only those in ``names``)."""
    return call_hooks(
        entry_points(group=ENTRY_POINT_GROUP),
        DetectorRegistry(),
        remedy=lambda name: f"install the package that provides the {name!r} anomaly detector",
        kind="anomaly detector",
        log=log,
        names=names,
    )
