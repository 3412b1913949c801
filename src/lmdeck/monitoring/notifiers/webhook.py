"""Generic JSON webhook, signed with HMAC-SHA256.

The body is the notification payload plus ``id`` and ``channel``. With a ``secret``, the request carries
``X-Lmdeck-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is HMAC-SHA256 with the secret over
``"<t>." + body`` (the raw body bytes). A receiver recomputes it, compares in constant time, and refuses
a ``t`` far from its own clock (replays). ``X-Lmdeck-Delivery`` is the notification id (stable across
retries: de-duplicate on it) and ``X-Lmdeck-Event`` the event::

    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    hmac.compare_digest(expected, v1)
"""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson

from lmdeck.monitoring.notifiers.base import Notification, NotifierRegistry, SecretResolver, require, reveal
from lmdeck.monitoring.notifiers.posting import post_json
from lmdeck.protocol.alerts import ChannelSpec

SIGNATURE_HEADER = "X-Lmdeck-Signature"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Lmdeck-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes) -> bool:
    """Whether ``header`` (an ``X-Lmdeck-Signature`` value) signs ``body`` with ``secret``."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    return hmac.compare_digest(signature(secret, int(parts["t"]), body), f"t={parts['t']},v1={parts['v1']}")


class WebhookNotifier:
    """POSTs the notification as JSON to ``url`` (see the module docs)."""

    def __init__(
        self, url: str, *, secret: bytes | None = None, headers: dict[str, str] | None = None, timeout_s: float = 10.0
    ) -> None:
        self.url = url
        self.secret = secret
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s

    @classmethod
    def from_spec(cls, spec: ChannelSpec, resolve: SecretResolver) -> WebhookNotifier:
        secret = resolve(spec.secret).encode() if spec.secret is not None else None
        headers = {name: reveal(value, resolve) for name, value in spec.headers.items()}
        return cls(
            reveal(require(spec.url, spec, "url"), resolve), secret=secret, headers=headers, timeout_s=spec.timeout_s
        )

    async def send(self, notification: Notification) -> None:
        body = orjson.dumps({"id": notification.id, "channel": notification.channel, **notification.payload})
        headers = {**self.headers, "X-Lmdeck-Delivery": notification.id, "X-Lmdeck-Event": notification.event}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.secret, int(time.time()), body)
        await post_json(self.url, body, headers, self.timeout_s)


def register(registry: NotifierRegistry) -> None:
    registry.add("webhook", WebhookNotifier.from_spec)
