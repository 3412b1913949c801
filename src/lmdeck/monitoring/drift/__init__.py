"""Drift: has what a route is asked, or how it answers, changed between two windows?

    monitor = DriftMonitor(db)
    monitor.report(DriftScope(route="demo", windows=Windows.trailing(reference="7d", current="1d", until=now)))
    monitor.drift_p_value("demo", "7d", "1d")

See :mod:`lmdeck.monitoring.drift.report` for the verdict, :mod:`~lmdeck.monitoring.drift.builtin` for
the tests and their sources, and docs/monitoring.md.
"""

from lmdeck.monitoring.drift.report import DriftMonitor, DriftOptions
from lmdeck.monitoring.drift.samples import DriftScope, fetch_samples
from lmdeck.monitoring.drift.windows import Window, WindowError, Windows

__all__ = ["DriftMonitor", "DriftOptions", "DriftScope", "Window", "WindowError", "Windows", "fetch_samples"]
