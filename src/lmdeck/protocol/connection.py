"""Where a client reaches lmdeck: ``LMDECK_BASE_URL`` and ``LMDECK_API_KEY``.

The Python client and the CLI read these (the server lists them in :data:`lmdeck.settings.ENVIRONMENT`)::

    base_url, api_key = client_environment()   # ("http://127.0.0.1:4000", None) when neither is set
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Where ``lmdeck serve`` listens by default.
DEFAULT_BASE_URL = "http://127.0.0.1:4000"


def client_environment(environ: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(base URL, API key) for the client side: ``LMDECK_BASE_URL`` and ``LMDECK_API_KEY``."""
    env = os.environ if environ is None else environ
    return env.get("LMDECK_BASE_URL") or DEFAULT_BASE_URL, env.get("LMDECK_API_KEY") or None
