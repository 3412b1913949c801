"""lmdeck: the operations deck between LLM applications and the models they call.

from lmdeck import Client
client = Client()  # LMDECK_BASE_URL, LMDECK_API_KEY
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmdeck.version import __version__

__all__ = ["Client", "LMDeckError", "__version__"]

if TYPE_CHECKING:
    from lmdeck.sdk import Client, LMDeckError


def __getattr__(name: str) -> Any:
    # The client pulls in httpx; import it only when asked for, so the CLI and server start fast.
    if name in ("Client", "LMDeckError"):
        from lmdeck import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'lmdeck' has no attribute {name!r}")
