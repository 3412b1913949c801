"""Finding providers: a name → factory table filled by the ``lmdeck.providers`` hook.

A plugin package declares in its ``pyproject.toml``::

    [project.entry-points."lmdeck.providers"]
    echo = "lmdeck_echo:register"

and ``register(registry)`` calls ``registry.add("echo", EchoProvider)``. The
built-in ``openai``, ``anthropic`` and ``local`` providers are registered the
same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from lmdeck.plugins import call_hooks
from lmdeck.providers.base import Provider, ProviderContext, ProviderFactory
from lmdeck.settings import ConfigError, TargetConfig

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lmdeck.providers"


@runtime_checkable
class HasDefaultBaseUrl(Protocol):
    """A provider factory (usually its class) that says where calls go when a target sets no ``base_url``."""

    default_base_url: str


class ProviderRegistry:
    """Provider factories by name.

    >>> registry = ProviderRegistry()
    >>> registry.add("echo", lambda target, ctx: ...)
    >>> "echo" in registry
    True
    """

    def __init__(self) -> None:
        self._factories: dict[str, ProviderFactory] = {}
        self.unavailable: dict[str, str] = {}

    def add(self, name: str, factory: ProviderFactory) -> None:
        self._factories[name] = factory

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def names(self) -> list[str]:
        return sorted(self._factories)

    def default_base_url(self, name: str) -> str | None:
        """Where provider ``name`` sends calls when a target sets no ``base_url`` (its ``default_base_url``)."""
        factory = self._factories.get(name)
        if isinstance(factory, HasDefaultBaseUrl) and isinstance(factory.default_base_url, str):
            return factory.default_base_url
        return None

    def create(self, target: TargetConfig, ctx: ProviderContext) -> Provider:
        try:
            factory = self._factories[target.provider]
        except KeyError:
            why = self.unavailable.get(target.provider)
            if why:
                raise ConfigError(f"provider {target.provider!r} could not be loaded: {why}") from None
            known = ", ".join(self.names()) or "none"
            raise ConfigError(
                f"unknown provider {target.provider!r} (known: {known}); install the plugin that provides it"
            ) from None
        return factory(target, ctx)


def load_providers(names: Iterable[str] | None = None) -> ProviderRegistry:
    """Call every registered ``lmdeck.providers`` hook (or only those named)."""
    # A provider whose optional dependencies are missing (``local`` without torch) is
    # reported when a route asks for it, not at start-up.
    return call_hooks(
        entry_points(group=ENTRY_POINT_GROUP),
        ProviderRegistry(),
        remedy=lambda name: f"install lmdeck[{name}]",
        kind="provider",
        log=log,
        names=names,
    )
