"""``lmdeck alerts``: alerts and their history, acknowledgement, silences, channel tests and export.

    lmdeck alerts list [--state open]             # open: firing or acknowledged
    lmdeck alerts get alt_...                     # summary, evidence series, history
    lmdeck alerts ack alt_... --comment "on it"
    lmdeck alerts silence --match rule=chat-errors --for 2h --comment "upstream maintenance"
    lmdeck alerts silences                        # active and future silences
    lmdeck alerts unsilence sil_...
    lmdeck alerts history [--rule chat-errors] [--since 7d]
    lmdeck alerts rules
    lmdeck alerts test ops-hook                   # one test notification, delivered now
    lmdeck alerts evaluate                        # evaluate every rule now
    lmdeck alerts export --prometheus > lmdeck-rules.yaml
    lmdeck alerts export --grafana > lmdeck-dashboard.json

Rules, channels and silences are declared under ``alerts:`` in ``lmdeck.yaml`` and synced with
``lmdeck apply``. The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY``; an API error prints its message and exits with status 1.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import parse_duration
from lmdeck.cli.tables import echo_json, table, when

app = typer.Typer(help="Alerts: list, acknowledge, silence, test channels, export rules.", no_args_is_help=True)


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def _rows(alerts: list[dict[str, Any]]) -> str:
    rows: list[list[object]] = [["ID", "RULE", "STATE", "SEVERITY", "VALUE", "STARTED", "SUMMARY"]]
    for a in alerts:
        rows.append(
            [a["id"], a["rule"], a["state"], a["severity"], _value(a["value"]), when(a["started_at"]), a["summary"]]
        )
    return table(rows)


@app.command("list")
def list_alerts(
    state: str | None = typer.Option(None, help="pending, firing, acknowledged, resolved, or open"),
    rule: str | None = typer.Option(None, help="only this rule's alerts"),
    limit: int = typer.Option(100, help="at most this many (1-1000)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Alerts, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    if rule:
        params["rule"] = rule
    with connect(base_url, api_key) as client:
        found = client.get("/api/alerts", params=params)["data"]
    if as_json:
        echo_json(found)
    else:
        typer.echo(_rows(found) if found else "no alerts")


@app.command("get")
def get_alert(
    alert_id: str = typer.Argument(..., help="an alert id (alt_...)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """One alert: its summary, the series around its firing point and its history."""
    with connect(base_url, api_key) as client:
        found = client.get(f"/api/alerts/{quote(alert_id, safe='')}")
    if as_json:
        echo_json(found)
        return
    typer.echo(f"{found['id']}  {found['rule']}  {found['state']}  ({found['severity']})")
    typer.echo(found["summary"])
    series = (found.get("evidence") or {}).get("series") or {}
    if series.get("points"):
        typer.echo(f"\n{series['metric']} per {series['step_s']}s:")
        typer.echo(table([["AT", "VALUE"], *[[when(at), _value(v)] for at, v in series["points"]]]))
    typer.echo("\nhistory:")
    rows: list[list[object]] = [["AT", "EVENT", "DETAIL"]]
    rows += [[when(e["at"]), e["event"], json.dumps(e["detail"]) if e["detail"] else ""] for e in found["history"]]
    typer.echo(table(rows))


@app.command("ack")
def acknowledge(
    alert_id: str = typer.Argument(..., help="a firing alert's id"),
    comment: str = typer.Option("", help="kept in the alert's history"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Acknowledge a firing alert: someone is on it (it still resolves, and says so)."""
    with connect(base_url, api_key) as client:
        found = client.post(f"/api/alerts/{quote(alert_id, safe='')}/ack", json={"comment": comment})
    typer.echo(f"{found['id']} acknowledged by {found['acknowledged_by']}")


def _matchers(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r}: write LABEL=VALUE, e.g. rule=chat-errors", param_hint="--match")
        out[name.strip()] = value.strip()
    return out


@app.command("silence")
def silence(
    match: list[str] = typer.Option(..., "--match", "-m", help="LABEL=VALUE (repeat: all must match)"),
    duration: str = typer.Option("1h", "--for", help="how long, e.g. 30m, 2h, 1d"),
    comment: str = typer.Option("", help="why"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Mute notifications of alerts whose labels match, from now for the --for duration."""
    seconds = parse_duration(duration, "--for") or 0.0
    ends = datetime.fromtimestamp(time.time() + seconds, UTC).isoformat()
    body = {"matchers": _matchers(match), "ends_at": ends, "comment": comment}
    with connect(base_url, api_key) as client:
        created = client.post("/api/alerts/silences", json=body)
    if as_json:
        echo_json(created)
    else:
        typer.echo(f"{created['id']} silences {created['matchers']} until {when(created['ends_at'])}")


@app.command("silences")
def silences(
    include_expired: bool = typer.Option(False, "--include-expired", help="also silences that ended"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Silences: active and future ones."""
    with connect(base_url, api_key) as client:
        found = client.get("/api/alerts/silences", params={"include_expired": include_expired})["data"]
    if as_json:
        echo_json(found)
        return
    rows: list[list[object]] = [["ID", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT"]]
    for s in found:
        matchers = ",".join(f"{k}={v}" for k, v in s["matchers"].items())
        rows.append([s["id"], matchers, when(s["starts_at"]), when(s["ends_at"]), s["created_by"], s["comment"]])
    typer.echo(table(rows) if found else "no silences")


@app.command("unsilence")
def unsilence(
    silence_id: str = typer.Argument(..., help="a silence id (sil_...)"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """End a silence now."""
    with connect(base_url, api_key) as client:
        client.delete(f"/api/alerts/silences/{quote(silence_id, safe='')}")
    typer.echo(f"{silence_id} ended")


@app.command("history")
def history(
    rule: str | None = typer.Option(None, help="only this rule's alerts"),
    since: str = typer.Option("7d", help="how far back, e.g. 24h, 7d"),
    limit: int = typer.Option(100, help="at most this many (1-1000)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Alerts that started in the period, resolved ones included, newest first."""
    params: dict[str, Any] = {"since": time.time() - (parse_duration(since, "--since") or 0.0), "limit": limit}
    if rule:
        params["rule"] = rule
    with connect(base_url, api_key) as client:
        found = client.get("/api/alerts", params=params)["data"]
    if as_json:
        echo_json(found)
        return
    rows: list[list[object]] = [["ID", "RULE", "STATE", "FIRED", "RESOLVED", "SUMMARY"]]
    rows += [[a["id"], a["rule"], a["state"], when(a["fired_at"]), when(a["resolved_at"]), a["summary"]] for a in found]
    typer.echo(table(rows) if found else "no alerts in the period")


@app.command("rules")
def rules(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Alert rules, with the error of any that could not be evaluated."""
    with connect(base_url, api_key) as client:
        found = client.get("/api/alerts/rules")["data"]
    if as_json:
        echo_json(found)
        return
    rows: list[list[object]] = [["NAME", "KIND", "METRIC", "SEVERITY", "CHANNELS", "ENABLED", "ERROR"]]
    for r in found:
        channels = ",".join(r["channels"])
        rows.append([r["name"], r["kind"], r["signal"]["metric"], r["severity"], channels, r["enabled"], r["error"]])
    typer.echo(table(rows) if found else "no rules")


@app.command("test")
def test_channel(
    channel: str = typer.Argument(..., help="a notification channel's name"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Send one test notification to a channel now; exit 1 when it was not delivered."""
    with connect(base_url, api_key) as client:
        outcome = client.post("/api/alerts/test", json={"channel": channel})
    if outcome["delivered"]:
        typer.echo(f"delivered to {channel}")
        return
    typer.echo(f"not delivered to {channel}: {outcome['error']}", err=True)
    raise typer.Exit(1)


@app.command("evaluate")
def evaluate(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Evaluate every rule now and deliver the notifications that produces."""
    with connect(base_url, api_key) as client:
        report = client.post("/api/alerts/evaluate", json={})
    if as_json:
        echo_json(report)
        return
    typer.echo(f"{report['rules']} rule(s): {len(report['fired'])} fired, {len(report['resolved'])} resolved")
    for name, error in report["errors"].items():
        typer.echo(f"  {name}: {error}", err=True)


@app.command("export")
def export(
    prometheus: bool = typer.Option(False, "--prometheus", help="Prometheus alerting rules (YAML)"),
    grafana: bool = typer.Option(False, "--grafana", help="the Grafana dashboard (JSON)"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """lmdeck's rules as Prometheus alerting rules (read from the gateway), or the Grafana dashboard lmdeck
    ships, on standard output."""
    from lmdeck.monitoring.export import grafana_dashboard, prometheus_rules
    from lmdeck.protocol.alerts import AlertRuleSpec

    if prometheus == grafana:
        raise typer.BadParameter("choose one of --prometheus or --grafana", param_hint="--prometheus/--grafana")
    if grafana:
        typer.echo(json.dumps(grafana_dashboard(), indent=2))
        return
    with connect(base_url, api_key) as client:
        found = client.get("/api/alerts/rules")["data"]
    specs = [AlertRuleSpec.model_validate({k: v for k, v in r.items() if k != "error"}) for r in found]
    typer.echo(prometheus_rules(specs), nl=False)
