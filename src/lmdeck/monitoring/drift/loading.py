"""The installed drift tests: the ``lmdeck.drift_tests`` entry-point group.

registry = load_drift_tests()
registry.defaults()        # the tests a report runs unless it names its own
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from lmdeck.monitoring.drift.registry import DriftTestRegistry
from lmdeck.plugins import call_hooks

log = logging.getLogger(__name__)

GROUP = "lmdeck.drift_tests"


def load_drift_tests() -> DriftTestRegistry:
    """Every installed drift test (entry points of ``lmdeck.drift_tests``).

    The built-ins are registered through the same group (its ``builtin`` hook), as third parties'
    tests are; an installation whose metadata lacks the group has none (reinstall lmdeck).
    """
    hooks = list(entry_points(group=GROUP))
    registry = call_hooks(
        hooks,
        DriftTestRegistry(),
        remedy=lambda name: f"reinstall the package providing the drift test {name!r}",
        kind="drift test",
        log=log,
    )
    return registry
