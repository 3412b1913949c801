"""Email over SMTP (:mod:`smtplib`, run in a worker thread): a plain-text message per notification.

The subject is the notification's title (``[FIRING] chat-errors (target=...)``); the body its text and,
after it, the payload as JSON. ``starttls`` upgrades the connection before ``username``/``password``
log in; ``Message-ID`` derives from the notification id, so a retried send is recognisably the same.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

import anyio
import orjson

from lmdeck.monitoring.notifiers.base import Notification, NotifierError, NotifierRegistry, SecretResolver, require
from lmdeck.protocol.alerts import ChannelSpec


class EmailNotifier:
    """Sends notifications as email through an SMTP server."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.sender, self.recipients = sender, list(recipients)
        self.starttls = starttls
        self.username, self.password = username, password
        self.timeout_s = timeout_s

    @classmethod
    def from_spec(cls, spec: ChannelSpec, resolve: SecretResolver) -> EmailNotifier:
        return cls(
            require(spec.smtp_host, spec, "smtp_host"),
            spec.smtp_port,
            spec.from_address,
            require(spec.to, spec, "to"),
            starttls=spec.starttls,
            username=spec.username,
            password=resolve(spec.password) if spec.password is not None else None,
            timeout_s=spec.timeout_s,
        )

    def message(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = notification.title
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = f"<{notification.id}@lmdeck>"
        msg["X-Lmdeck-Event"] = notification.event
        payload = orjson.dumps(notification.payload, option=orjson.OPT_INDENT_2).decode()
        msg.set_content(f"{notification.text}\n\n{payload}\n")
        return msg

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username and self.password:
                smtp.login(self.username, self.password)
            smtp.send_message(msg)

    async def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        try:
            await anyio.to_thread.run_sync(self._send, msg)
        except smtplib.SMTPResponseException as exc:
            # 5xx answers are permanent (bad recipient, refused sender); 4xx are worth another try.
            raise NotifierError(
                f"SMTP {self.host}:{self.port} answered {exc.smtp_code}", retryable=exc.smtp_code < 500
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifierError(f"SMTP {self.host}:{self.port} failed: {type(exc).__name__}: {exc}") from None


def register(registry: NotifierRegistry) -> None:
    registry.add("email", EmailNotifier.from_spec)
