"""Providers: one module per upstream kind, each behind :class:`lmdeck.providers.base.Provider`.

Built-in providers register through the same ``lmdeck.providers`` entry-point hook
that third-party packages use (see :mod:`lmdeck.providers.registry`).
"""

from lmdeck.providers.base import Provider, ProviderContext, UpstreamError
from lmdeck.providers.registry import ProviderRegistry, load_providers

__all__ = ["Provider", "ProviderContext", "ProviderRegistry", "UpstreamError", "load_providers"]
