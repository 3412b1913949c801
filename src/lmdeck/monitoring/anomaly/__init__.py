"""Anomaly detectors: learn a baseline from a series and say whether its newest points deviate.

The contract is in :mod:`lmdeck.monitoring.anomaly.base`; detectors register through the
``lmdeck.anomaly_detectors`` entry-point group (built-ins included) and are looked up by name.

Built-ins, one module each: ``seasonal`` (hour-of-week / hour-of-day profile), ``mad`` (median and MAD
of a trailing window), ``ewma`` (Huber-clipped exponentially weighted level), ``changepoint`` (a
shifted last segment of the recent window, by ruptures) and ``auto`` (seasonal or mad by history,
with changepoint alongside; the rules' default). What their ``sensitivity`` means:
:mod:`lmdeck.monitoring.anomaly.scoring`; measured rates: docs/benchmarks.md (``bench/anomaly.py``).
"""

from lmdeck.monitoring.anomaly.base import (
    ENTRY_POINT_GROUP,
    Detector,
    DetectorError,
    DetectorRegistry,
    Finding,
    Series,
    load_detectors,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Detector",
    "DetectorError",
    "DetectorRegistry",
    "Finding",
    "Series",
    "load_detectors",
]
