"""Prometheus Alertmanager's webhook format (``version: "4"``), for receivers written against it.

One notification is one group with one alert: ``status`` firing or resolved, ``labels`` (``alertname``
is the rule), ``annotations`` (summary, description), ``startsAt``/``endsAt`` in RFC 3339 and a
``fingerprint`` stable for the incident. See https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from lmdeck.monitoring.notifiers.base import Notification, NotifierRegistry, SecretResolver, iso, require, reveal
from lmdeck.monitoring.notifiers.posting import post_json
from lmdeck.protocol.alerts import ChannelSpec

#: Alertmanager's zero time: an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"


def alertmanager_body(notification: Notification, receiver: str) -> dict[str, Any]:
    """The webhook body of Alertmanager for ``notification``."""
    incident = notification.incident
    labels = {str(k): str(v) for k, v in (incident.get("labels") or {}).items() if k != "rule"}
    labels["alertname"] = str(incident.get("rule", "lmdeck"))
    status = "resolved" if notification.event == "resolved" else "firing"
    annotations = {"summary": str(incident.get("summary", "")), "description": notification.text}
    started = incident.get("fired_at") or incident.get("started_at")
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(started) if started else ZERO_TIME,
        "endsAt": iso(incident["resolved_at"]) if incident.get("resolved_at") else ZERO_TIME,
        "generatorURL": "",
        "fingerprint": hashlib.sha256(str(incident.get("id", "")).encode()).hexdigest()[:16],
    }
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={labels['alertname']!r}}}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [alert],
    }


class AlertmanagerNotifier:
    """POSTs :func:`alertmanager_body` to ``url``."""

    def __init__(self, url: str, receiver: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.receiver = receiver
        self.timeout_s = timeout_s

    @classmethod
    def from_spec(cls, spec: ChannelSpec, resolve: SecretResolver) -> AlertmanagerNotifier:
        return cls(reveal(require(spec.url, spec, "url"), resolve), spec.name, spec.timeout_s)

    async def send(self, notification: Notification) -> None:
        body = orjson.dumps(alertmanager_body(notification, self.receiver))
        await post_json(self.url, body, {}, self.timeout_s)


def register(registry: NotifierRegistry) -> None:
    registry.add("alertmanager", AlertmanagerNotifier.from_spec)
