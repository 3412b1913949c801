"""Anomaly detectors: learn a baseline from a series and say whether its newest points deviate.

The contract is in :mod:`lmdeck.monitoring.anomaly.base`; detectors register through the
``lmdeck.anomaly_detectors`` entry-point group (built-ins included) and are looked up by name.
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
