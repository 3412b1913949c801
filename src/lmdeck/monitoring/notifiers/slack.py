"""Slack-compatible incoming webhook: ``{"text", "blocks"}`` POSTed to the channel's webhook URL.

Mattermost, Rocket.Chat and Discord's ``/slack`` endpoints take the same body.
"""

from __future__ import annotations

from typing import Any

import orjson

from lmdeck.monitoring.notifiers.base import Notification, NotifierRegistry, SecretResolver, require, reveal
from lmdeck.monitoring.notifiers.posting import post_json
from lmdeck.protocol.alerts import ChannelSpec

_EMOJI = {"firing": ":rotating_light:", "resolved": ":white_check_mark:", "test": ":wave:"}


def slack_body(notification: Notification) -> dict[str, Any]:
    """The incoming-webhook body: a ``text`` fallback and Block Kit sections."""
    incident = notification.incident
    headline = f"{_EMOJI.get(notification.event, '')} {notification.title}".strip()
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{incident.get('severity', 'info')}"},
        {"type": "mrkdwn", "text": f"*State*\n{incident.get('state', notification.event)}"},
    ]
    if incident.get("value") is not None:
        fields.append({"type": "mrkdwn", "text": f"*Value*\n{incident['value']:.4g}"})
    return {
        "text": f"{headline}: {incident.get('summary', '')}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": str(incident.get("summary", "")) or " "}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"lmdeck alert `{incident.get('id', '')}`"}]},
        ],
    }


class SlackNotifier:
    """POSTs :func:`slack_body` to an incoming-webhook ``url``."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    @classmethod
    def from_spec(cls, spec: ChannelSpec, resolve: SecretResolver) -> SlackNotifier:
        return cls(reveal(require(spec.url, spec, "url"), resolve), spec.timeout_s)

    async def send(self, notification: Notification) -> None:
        await post_json(self.url, orjson.dumps(slack_body(notification)), {}, self.timeout_s)


def register(registry: NotifierRegistry) -> None:
    registry.add("slack", SlackNotifier.from_spec)
