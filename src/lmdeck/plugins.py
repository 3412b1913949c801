"""Calling the entry-point hooks that fill a plugin registry (providers, evaluators).

A hook is ``register(registry)``; built-ins and third-party packages declare theirs
in the same entry-point group. A hook whose import fails is not an error at
start-up: its name and the reason are kept in ``registry.unavailable`` so that the
registry can name the fix when something asks for it.

    registry = call_hooks(
        entry_points(group="lmdeck.providers"),
        ProviderRegistry(),
        remedy=lambda name: f"install lmdeck[{name}]",
        kind="provider",
        log=log,
    )
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar


class Hook(Protocol):
    """What the hook loop needs of an entry point."""

    name: str

    def load(self) -> Any: ...


class HookRegistry(Protocol):
    unavailable: dict[str, str]


RegistryT = TypeVar("RegistryT", bound=HookRegistry)


def call_hooks(
    hooks: Iterable[Hook],
    registry: RegistryT,
    *,
    remedy: Callable[[str], str],
    kind: str,
    log: logging.Logger,
    names: Iterable[str] | None = None,
) -> RegistryT:
    """Call each hook (or only those in ``names``) with ``registry``; a failed import is kept as unavailable."""
    wanted = set(names) if names is not None else None
    for ep in hooks:
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            hook = ep.load()
            hook(registry)
        except ImportError as exc:
            registry.unavailable[ep.name] = f"{exc}; {remedy(ep.name)}"
            log.debug("%s %s unavailable: %s", kind, ep.name, exc)
    return registry
