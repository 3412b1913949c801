"""The Python client: ``Client`` and one namespace module per group of calls."""

from lmdeck.sdk.client import Client
from lmdeck.sdk.errors import LMDeckError
from lmdeck.sdk.namespace import Namespace

__all__ = ["Client", "LMDeckError", "Namespace"]
