"""Finding job runners: a name → factory table filled by the ``lmdeck.job_runners`` hook.

A plugin package declares in its ``pyproject.toml``::

    [project.entry-points."lmdeck.job_runners"]
    slurm = "lmdeck_slurm:register"

and ``register(registry)`` calls ``registry.add("slurm", SlurmRunner)`` (a factory taking
:class:`~lmdeck.settings.FineTuningSettings`). The built-in ``local`` and ``ray`` runners are registered
the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import entry_points

from lmdeck.finetune.runners.base import JobRunner, RunnerFactory
from lmdeck.plugins import call_hooks
from lmdeck.settings import ConfigError, FineTuningSettings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lmdeck.job_runners"


class RunnerRegistry:
    """Job runner factories by name.

    >>> registry = RunnerRegistry()
    >>> registry.add("inline", lambda settings: ...)
    >>> registry.names()
    ['inline']
    """

    def __init__(self) -> None:
        self._factories: dict[str, RunnerFactory] = {}
        self.unavailable: dict[str, str] = {}

    def add(self, name: str, factory: RunnerFactory) -> None:
        self._factories[name] = factory

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def names(self) -> list[str]:
        return sorted(self._factories)

    def create(self, name: str, settings: FineTuningSettings) -> JobRunner:
        """The runner called ``name``; ``ConfigError`` naming the fix when there is none."""
        try:
            factory = self._factories[name]
        except KeyError:
            why = self.unavailable.get(name)
            if why:
                raise ConfigError(f"job runner {name!r} could not be loaded: {why}") from None
            known = ", ".join(self.names()) or "none"
            raise ConfigError(
                f"unknown job runner {name!r} (known: {known}); install the plugin that provides it"
            ) from None
        return factory(settings)


def load_runners(names: Iterable[str] | None = None) -> RunnerRegistry:
    """Call every registered ``lmdeck.job_runners`` hook (or only those named)."""
    return call_hooks(
        entry_points(group=ENTRY_POINT_GROUP),
        RunnerRegistry(),
        remedy=lambda name: f"install lmdeck[{name}]",
        kind="job runner",
        log=log,
        names=names,
    )
