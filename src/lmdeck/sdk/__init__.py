"""The Python client: ``Client`` and one namespace module per group of calls."""

from lmdeck.sdk.client import Client, LMDeckError, Namespace

__all__ = ["Client", "LMDeckError", "Namespace"]
