"""The notifier contract: ``await Notifier.send(notification)``, raising :class:`NotifierError` on failure.

A notifier is built from a channel's spec by the factory its type registers::

    def register(registry: NotifierRegistry) -> None:
        registry.add("webhook", WebhookNotifier.from_spec)

    notifier = load_notifiers().create(ChannelSpec(name="ops", type="webhook", url=...), resolve)
    await notifier.send(Notification(id="ntf_1", channel="ops", event="firing", payload={...}))

``resolve`` turns a secret reference (``{"$env": ...}``, ``{"$secret": ...}``) into the secret.
The dispatcher (:mod:`lmdeck.monitoring.dispatch`) retries a failed send with backoff and moves it to
the dead-letter log after the last attempt; ``NotifierError(retryable=False)`` skips the retries
(a 4xx other than 408/429: sending the same body again cannot succeed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from lmdeck.plugins import call_hooks
from lmdeck.protocol.alerts import ChannelSpec
from lmdeck.protocol.secrets import SecretReference

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lmdeck.notifiers"

#: Turns a secret reference into the secret (``ValueError`` naming the fix when it cannot).
SecretResolver = Callable[[SecretReference], str]


class NotifierError(Exception):
    """A notification was not delivered; ``retryable`` False when sending it again cannot help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Notification:
    """One notification: ``id`` is stable across retries (receivers may de-duplicate on it); ``event`` is
    ``firing``, ``resolved`` or ``test``; ``payload`` is :func:`lmdeck.monitoring.evaluator.notification_payload`."""

    id: str
    channel: str
    event: str
    payload: dict[str, Any]

    @property
    def incident(self) -> dict[str, Any]:
        incident: dict[str, Any] = self.payload.get("incident") or {}
        return incident

    @property
    def title(self) -> str:
        """``"[FIRING] chat-errors (target=openai:gpt-4o)"``: the line a person reads first."""
        incident = self.incident
        group = incident.get("group") or {}
        where = f" ({', '.join(f'{k}={v}' for k, v in group.items())})" if group else ""
        return f"[{self.event.upper()}] {incident.get('rule', 'lmdeck')}{where}"

    @property
    def text(self) -> str:
        """A plain-text body: the title, the summary, the severity and the times."""
        incident = self.incident
        lines = [self.title, str(incident.get("summary", ""))]
        lines.append(f"severity: {incident.get('severity', 'info')}")
        for name in ("fired_at", "resolved_at"):
            if incident.get(name):
                lines.append(f"{name.replace('_at', '')}: {iso(incident[name])}")
        if incident.get("id"):
            lines.append(f"alert: {incident['id']}")
        return "\n".join(line for line in lines if line)


def iso(epoch: float) -> str:
    """RFC 3339 in UTC: ``2026-12-01T06:00:00Z``."""
    return datetime.fromtimestamp(float(epoch), UTC).isoformat().replace("+00:00", "Z")


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications over one protocol."""

    async def send(self, notification: Notification) -> None:
        """Deliver ``notification``; :class:`NotifierError` when it was not delivered."""
        ...


#: Builds a notifier as ``factory(spec, resolve)``; ``ValueError`` naming the missing field when the spec lacks one.
NotifierFactory = Callable[[ChannelSpec, SecretResolver], Notifier]


class NotifierRegistry:
    """Notifier factories by channel type."""

    def __init__(self) -> None:
        self._factories: dict[str, NotifierFactory] = {}
        self.unavailable: dict[str, str] = {}

    def add(self, name: str, factory: NotifierFactory) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def check(self, spec: ChannelSpec) -> None:
        """``ValueError`` naming the fix when ``spec``'s type is unknown."""
        if spec.type not in self._factories:
            if spec.type in self.unavailable:
                raise ValueError(f"channel type {spec.type!r} is unavailable: {self.unavailable[spec.type]}")
            raise ValueError(f"unknown channel type {spec.type!r}; known: {', '.join(self.names()) or 'none'}")

    def create(self, spec: ChannelSpec, resolve: SecretResolver) -> Notifier:
        """The notifier of ``spec``; ``ValueError`` naming the fix (unknown type, missing field)."""
        self.check(spec)
        return self._factories[spec.type](spec, resolve)


def load_notifiers() -> NotifierRegistry:
    """The registry filled by every ``lmdeck.notifiers`` entry point."""
    return call_hooks(
        entry_points(group=ENTRY_POINT_GROUP),
        NotifierRegistry(),
        remedy=lambda name: f"install the package that provides the {name!r} notification channel",
        kind="notifier",
        log=log,
    )


def reveal(value: str | SecretReference, resolve: SecretResolver) -> str:
    """``value`` itself, or the secret a reference names (``ValueError`` naming a missing secret)."""
    return value if isinstance(value, str) else resolve(value)


def require(value: Any, spec: ChannelSpec, field: str) -> Any:
    """``value``, or ``ValueError`` naming the channel field to set."""
    if value in (None, "", []):
        raise ValueError(f"channel {spec.name!r} of type {spec.type!r} needs `{field}`")
    return value
