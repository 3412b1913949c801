"""Notification channels, one protocol per module, registered through the ``lmdeck.notifiers`` entry points.

Built-ins: ``webhook`` (generic JSON, HMAC-signed), ``slack`` (incoming-webhook payloads), ``email``
(SMTP) and ``alertmanager`` (Prometheus Alertmanager's webhook format). See
:mod:`lmdeck.monitoring.notifiers.base` for the contract.
"""

from lmdeck.monitoring.notifiers.base import (
    ENTRY_POINT_GROUP,
    Notification,
    Notifier,
    NotifierError,
    NotifierRegistry,
    load_notifiers,
)

__all__ = ["ENTRY_POINT_GROUP", "Notification", "Notifier", "NotifierError", "NotifierRegistry", "load_notifiers"]
