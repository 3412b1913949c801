"""Posting a JSON body to a URL, the part webhook-style notifiers share; the outcome as :class:`NotifierError`."""

from __future__ import annotations

import httpx

from lmdeck.monitoring.notifiers.base import NotifierError

#: Statuses worth retrying: timeouts, rate limits and the server's own failures.
RETRYABLE = frozenset({408, 425, 429})


def shown(url: str) -> str:
    """``url`` as errors name it: scheme, host and port only, since a webhook's path often holds its token."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return "(an invalid URL)"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}/..."


async def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> None:
    """POST ``body`` (JSON bytes) to ``url``; :class:`NotifierError` unless the answer is 2xx."""
    where = shown(url)
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers={"content-type": "application/json", **headers})
    except httpx.HTTPError as exc:
        raise NotifierError(f"POST {where} failed: {type(exc).__name__}: {exc}") from None
    except (httpx.InvalidURL, ValueError) as exc:  # a URL or header that cannot be sent: no retry helps
        raise NotifierError(f"POST {where} cannot be sent: {exc}", retryable=False) from None
    if response.is_success:
        return
    retryable = response.status_code >= 500 or response.status_code in RETRYABLE
    raise NotifierError(f"POST {where} answered {response.status_code}: {response.text[:300]}", retryable=retryable)
