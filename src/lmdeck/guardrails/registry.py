"""Finding guardrails: a name → factory table filled by the ``lmdeck.guardrails`` hook.

Built-in guardrails register through the same entry-point group third parties use. A
plugin package declares in its ``pyproject.toml``::

    [project.entry-points."lmdeck.guardrails"]
    shouting = "my_package.guards:register"

and ``register(registry)`` adds a factory, called as ``factory(resources, **options)`` with
the :class:`GuardResources` the gateway lends (embeddings, a route to call) and the options
of the configuration's guardrail entry; a factory raises :class:`GuardrailError` for a bad
option.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from lmdeck.guardrails.base import Guardrail, GuardrailError, GuardrailInfo, GuardResources
from lmdeck.plugins import call_hooks

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lmdeck.guardrails"

#: Builds a guardrail as ``factory(resources, **options)``; a guardrail class is its own factory.
GuardrailFactory = Callable[..., Guardrail]


class GuardrailRegistry:
    """Guardrail factories by type name."""

    def __init__(self) -> None:
        self._factories: dict[str, GuardrailFactory] = {}
        self.unavailable: dict[str, str] = {}

    def add(self, name: str, factory: GuardrailFactory) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def create(
        self, type_name: str, options: Mapping[str, Any] | None = None, resources: GuardResources | None = None
    ) -> Guardrail:
        """A guardrail of ``type_name`` built with ``options``; GuardrailError names the fix."""
        factory = self._factories.get(type_name)
        if factory is None:
            if type_name in self.unavailable:
                raise GuardrailError(f"guardrail type {type_name!r} is unavailable: {self.unavailable[type_name]}")
            raise GuardrailError(f"unknown guardrail type {type_name!r}; known: {', '.join(self.names()) or 'none'}")
        try:
            return factory(resources or GuardResources(), **dict(options or {}))
        except TypeError as exc:
            raise GuardrailError(f"guardrail type {type_name!r}: {exc}") from None

    def info(self, type_name: str) -> GuardrailInfo:
        factory = self._factories[type_name]
        doc = (inspect.getdoc(factory) or "").split("\n\n")[0].replace("\n", " ")
        options: dict[str, str] = {}
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            for pname, param in signature.parameters.items():
                if pname in ("self", "resources") or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    continue
                options[pname] = "required" if param.default is param.empty else f"default {param.default!r}"
        return GuardrailInfo(
            name=type_name,
            description=doc,
            cost=getattr(factory, "cost", "fast"),
            stages=getattr(factory, "stages", frozenset({"input", "output"})),
            options=options,
        )


def load_guardrails(names: Iterable[str] | None = None) -> GuardrailRegistry:
    """The registry filled by every ``lmdeck.guardrails`` entry point (or only those in ``names``)."""
    return call_hooks(
        entry_points(group=ENTRY_POINT_GROUP),
        GuardrailRegistry(),
        remedy=lambda name: f"install the package that provides the {name!r} guardrail",
        kind="guardrail",
        log=log,
        names=names,
    )
