"""Alerting end to end: a real ``lmdeck serve`` in front of the FAKE upstream, a real webhook receiver (an HTTP
server in this test, checking the HMAC signature; it takes the Slack-compatible and Alertmanager posts too)
and a real SMTP server (aiosmtpd).

The route's upstream starts failing: the alert fires once, and each channel gets exactly one notification;
the upstream recovers: each gets exactly one resolve notification. Evaluation is driven through
``POST /api/alerts/evaluate`` while traffic flows; the verdict is by counts, never by elapsed time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.monitoring.notifiers.webhook import SIGNATURE_HEADER, verify
from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, free_port, openai_target

HOOK_SECRET = "whsec-test-Mz8pQ2vR7tY4"
SECRET_ENV = "LMDECK_TEST_ALERT_HOOK_SECRET"
#: Generous: traces reach the store through the spool and writer, and the error window must roll past.
PATIENCE_S = 120.0


class WebhookReceiver:
    """An HTTP server on loopback that keeps every POST it gets: (headers, raw body)."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []
        others: dict[str, list[bytes]] = {}
        #: What came to the generic webhook's path; ``others``: the bodies that came to any other path.
        self.received, self.others = received, others

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path == "/hooks/lmdeck":
                    received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                else:
                    others.setdefault(self.path, []).append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return self.at("/hooks/lmdeck")

    def at(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd handler that keeps every message delivered to it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append(message_from_bytes(content))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[WebhookReceiver, Mailbox, int]]:
    hook, mailbox = WebhookReceiver(), Mailbox()
    port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield hook, mailbox, port
    finally:
        smtp.stop()
        hook.stop()


@pytest.fixture(scope="module")
def alerting_gateway(
    gateway: GatewayFactory, fake_upstream_server: FakeUpstreamProcess, receivers: tuple[WebhookReceiver, Mailbox, int]
) -> GatewayProcess:
    hook, _, smtp_port = receivers
    alerts = {
        "evaluation_interval_s": None,  # evaluated when the test asks, through the admin API
        "channels": [
            {"name": "hook", "type": "webhook", "url": hook.url, "secret": {"$env": SECRET_ENV}},
            {"name": "chat", "type": "slack", "url": hook.at("/slack")},
            {"name": "am", "type": "alertmanager", "url": hook.at("/alertmanager")},
            {
                "name": "mail",
                "type": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "from_address": "lmdeck@example.test",
                "to": ["oncall@example.test"],
            },
        ],
        "rules": [
            {
                "name": "chat-errors",
                "description": "the chat route's upstream fails",
                "severity": "critical",
                "signal": {"metric": "error_rate", "window_s": 6, "where": {"route": "chat"}, "min_requests": 3},
                "op": ">",
                "threshold": 0.5,
                "clear_threshold": 0.2,
                "channels": ["hook", "mail", "chat", "am"],
            }
        ],
    }
    routes = [{"name": "chat", "targets": [openai_target(fake_upstream_server)]}]
    # The breaker stays closed so that every request reaches the upstream and recovery shows at once.
    return gateway(
        routes, fresh=True, env={SECRET_ENV: HOOK_SECRET}, alerts=alerts, breaker={"failure_threshold": 1_000_000}
    )


def admin(gw: GatewayProcess) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers=gw.headers(), timeout=30.0)


def send(client: openai.OpenAI, n: int) -> tuple[int, int]:
    """``n`` chat requests; (succeeded, failed)."""
    ok = failed = 0
    for _ in range(n):
        try:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}])
            ok += 1
        except openai.APIStatusError:
            failed += 1
    return ok, failed


def drive(
    gw: GatewayProcess, client: openai.OpenAI, until: Callable[[list[dict[str, Any]]], bool], *, expect_ok: bool
) -> list[dict[str, Any]]:
    """Send traffic and evaluate until ``until(alerts)`` holds; the alerts of rule chat-errors."""
    deadline = time.monotonic() + PATIENCE_S
    with admin(gw) as http:
        while True:
            ok, failed = send(client, 4)
            assert (failed if expect_ok else ok) == 0, f"the upstream answered {ok} ok and {failed} failed"
            assert http.post("/api/alerts/evaluate", json={}).status_code == 200
            alerts = http.get("/api/alerts", params={"rule": "chat-errors"}).json()["data"]
            if until(alerts):
                return list(alerts)
            assert time.monotonic() < deadline, f"no change after {PATIENCE_S}s; alerts: {alerts}"


def test_failing_upstream_fires_once_notifies_each_channel_once_and_resolves_once(
    alerting_gateway: GatewayProcess,
    fake_upstream_server: FakeUpstreamProcess,
    receivers: tuple[WebhookReceiver, Mailbox, int],
) -> None:
    hook, mailbox, _ = receivers
    gw = alerting_gateway
    client = openai.OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0)
    fake_upstream_server.reset()
    drive(gw, client, lambda alerts: True, expect_ok=True)
    with admin(gw) as http:
        assert http.get("/api/alerts").json()["data"] == []

    fake_upstream_server.configure(error_rate=1.0, error_status=500)
    try:
        firing = drive(gw, client, lambda alerts: bool(alerts), expect_ok=False)
        assert [a["state"] for a in firing] == ["firing"]
        with admin(gw) as http:
            for _ in range(3):  # still failing: more evaluations, no more notifications
                send(client, 4)
                assert http.post("/api/alerts/evaluate", json={}).json()["fired"] == []
    finally:
        fake_upstream_server.configure(error_rate=0.0)

    assert [json.loads(body)["event"] for _, body in hook.received] == ["firing"]
    assert [m["Subject"] for m in mailbox.messages] == ["[FIRING] chat-errors"]

    resolved = drive(gw, client, lambda alerts: alerts[0]["state"] == "resolved", expect_ok=True)
    assert len(resolved) == 1 and resolved[0]["id"] == firing[0]["id"]
    with admin(gw) as http:
        assert http.post("/api/alerts/evaluate", json={}).json()["resolved"] == []
        detail = http.get(f"/api/alerts/{firing[0]['id']}").json()

    events = [json.loads(body)["event"] for _, body in hook.received]
    assert events == ["firing", "resolved"]
    for headers, body in hook.received:
        assert verify(HOOK_SECRET.encode(), headers[SIGNATURE_HEADER.lower()], body)
        assert headers["x-lmdeck-delivery"] == json.loads(body)["id"]
    assert not verify(b"wrong secret", hook.received[0][0][SIGNATURE_HEADER.lower()], hook.received[0][1])
    first = json.loads(hook.received[0][1])
    assert first["incident"]["rule"] == "chat-errors" and first["incident"]["severity"] == "critical"
    assert [m["Subject"] for m in mailbox.messages] == ["[FIRING] chat-errors", "[RESOLVED] chat-errors"]
    assert all(m["To"] == "oncall@example.test" for m in mailbox.messages)
    # The Slack-compatible and Alertmanager channels got one of each too, in their own formats.
    slack = [json.loads(body)["text"] for body in hook.others["/slack"]]
    assert [text.split(":")[1] for text in slack] == ["rotating_light", "white_check_mark"]
    alertmanager = [json.loads(body) for body in hook.others["/alertmanager"]]
    assert [(b["version"], b["status"]) for b in alertmanager] == [("4", "firing"), ("4", "resolved")]
    assert alertmanager[1]["alerts"][0]["labels"]["alertname"] == "chat-errors"

    assert [e["event"] for e in detail["history"]] == ["pending", "firing", "resolved"]
    # The evidence: the error rate per minute around the firing point, the failures visible in it.
    assert detail["evidence"]["series"]["metric"] == "error_rate"
    assert any(value and value > 0 for _, value in detail["evidence"]["series"]["points"])


def cli(gw: GatewayProcess, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, [*args, "--base-url", gw.url, "--api-key", gw.admin_key])
    assert result.exit_code == code, result.output
    return result.output


def test_the_cli_and_apply_against_the_same_gateway(
    alerting_gateway: GatewayProcess, receivers: tuple[WebhookReceiver, Mailbox, int], tmp_path: Path
) -> None:
    gw = alerting_gateway
    hook, _, _ = receivers
    before = len(hook.received)
    assert "chat-errors" in cli(gw, "alerts", "rules")
    history = cli(gw, "alerts", "history", "--since", "1h")
    assert "chat-errors" in history and "resolved" in history
    alert_id = json.loads(cli(gw, "alerts", "list", "--json"))[0]["id"]
    detail = cli(gw, "alerts", "get", alert_id)
    assert "error_rate per 60s" in detail and "firing" in detail and "resolved" in detail
    assert cli(gw, "alerts", "test", "hook").strip() == "delivered to hook"
    assert json.loads(hook.received[before][1])["event"] == "test"

    created = cli(gw, "alerts", "silence", "--match", "rule=chat-errors", "--for", "2h", "--comment", "maintenance")
    silence_id = created.split()[0]
    assert silence_id in cli(gw, "alerts", "silences")
    cli(gw, "alerts", "unsilence", silence_id)
    assert cli(gw, "alerts", "silences").strip() == "no silences"

    # `lmdeck apply` syncs the alerts section with the rest of the file; a second run changes nothing.
    declared = {
        "alerts": {
            "rules": [
                {
                    "name": "chat-latency",
                    "signal": {"metric": "latency_p95", "where": {"route": "chat"}},
                    "threshold": 5000,
                    "for_s": 300,
                    "channels": ["hook"],
                }
            ]
        }
    }
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(declared))
    assert "create rule chat-latency" in cli(gw, "apply", "-f", str(path), "--dry-run")
    assert "alerts applied: 1 change(s)" in cli(gw, "apply", "-f", str(path))
    assert cli(gw, "apply", "-f", str(path)).strip() == "no changes"

    exported = yaml.safe_load(cli(gw, "alerts", "export", "--prometheus"))
    rules = {r["alert"]: r for r in exported["groups"][0]["rules"]}
    assert set(rules) == {"chat-errors", "chat-latency"} and rules["chat-latency"]["for"] == "300s"
    assert json.loads(cli(gw, "alerts", "export", "--grafana"))["uid"] == "lmdeck-gateway"
