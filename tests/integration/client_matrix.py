"""What every client-library test sends through a real ``lmdeck serve``: one normal call and four failures.

Each ``test_client_<library>.py`` maps these onto its library and asserts the library's own
exception for each failure::

    401  a key lmdeck does not know
    404  a model (route) that does not exist
    400  a parameter out of range (``temperature: 5``, named in ``param``)
    429  the upstream's rate limit, passed through (``max_retries: 0``, so no retry hides it)
"""

from __future__ import annotations

from typing import Any, Literal

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

Failure = Literal[401, 404, 400, 429]
FAILURES: tuple[Failure, ...] = (401, 404, 400, 429)
BAD_KEY = "sk-lmdeck-not-a-key"


def client_gateway(gateway: GatewayFactory, fake: FakeUpstreamProcess) -> GatewayProcess:
    """The gateway all client-library tests share: route ``chat`` to the fake upstream, no retries."""
    return gateway([{"name": "chat", "targets": [openai_target(fake, max_retries=0)]}])


def arrange(failure: Failure, fake: FakeUpstreamProcess, key: str) -> dict[str, Any]:
    """Set the fake up for ``failure``; the ``key``, ``model`` and extra call fields that provoke it."""
    if failure == 429:
        fake.configure(script=[429])
    return {
        "key": BAD_KEY if failure == 401 else key,
        "model": "no-such-model" if failure == 404 else "chat",
        "fields": {"temperature": 5} if failure == 400 else {},
    }
