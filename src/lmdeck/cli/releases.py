"""``lmdeck releases``: progressive delivery of a candidate bundle on a route.

    lmdeck releases create reply-v3.yaml         # a YAML or JSON file of the release (docs/delivery.md)
    lmdeck releases start reply-v3
    lmdeck releases status reply-v3              # state, share, shadow verdict, last analysis per metric, history
    lmdeck releases promote reply-v3             # to the next step now (the last: promoted)
    lmdeck releases rollback reply-v3 --reason "answers got worse"
    lmdeck releases abort reply-v3
    lmdeck releases list [--state canary]

The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` / ``LMDECK_API_KEY``;
an API error prints its message and exits with status 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.specs import read_spec
from lmdeck.cli.tables import table
from lmdeck.sdk import Client
from lmdeck.sdk.releases import Releases

app = typer.Typer(
    help="Releases: canary a candidate bundle, promote or roll it back on evidence.", no_args_is_help=True
)

REASON = typer.Option(None, "--reason", help="why (kept in the history and the audit log)")


def _releases(client: Client) -> Releases:
    return client.namespace("releases")  # type: ignore[return-value]


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def shadow_text(shadow: dict[str, Any]) -> str:
    """A release's shadow stage in two lines: what was mirrored and spent, and the gate's verdict."""
    c, v, spec = shadow["counters"], shadow["verdict"], shadow["spec"]
    mirroring = "mirroring" if shadow["active"] else "not mirroring"
    interval = f" [{_num(v['win_rate_low'])}, {_num(v['win_rate_high'])}]" if v.get("win_rate") is not None else ""
    return (
        f"shadow ({mirroring}, {spec['sample']:g} of requests): {c['mirrored']} mirrored, {c['dropped']} dropped, "
        f"{c['budget_exhausted']} over budget, {c['failed']} failed, {c['judged']} judged; spent "
        f"{c['spent_micros']} of {spec['budget_micros']} micro-dollars\n"
        f"shadow verdict: {v['decision']}: {v['wins']} wins, {v['ties']} ties, {v['losses']} losses, win rate "
        f"{_num(v.get('win_rate'))}{interval} (gate {spec['min_win_rate']:g} after {spec['min_pairs']} pairs)"
    )


def status_text(found: dict[str, Any]) -> str:
    """A release as text: its state and share, the last analysis per metric, and its history."""
    spec = found["spec"]
    step = found.get("step")
    where = f" step {step + 1}/{len(spec['strategy']['steps'])}" if step is not None else ""
    lines = [
        f"release {spec['name']} on route {spec['route']}: {found['state']}{where}, candidate {found['percent']:g}%"
    ]
    if found.get("reason"):
        lines.append(f"reason: {found['reason']}")
    shadow = found.get("shadow")
    if shadow:
        lines.append(shadow_text(shadow))
    analysis = found.get("last_analysis")
    if analysis:
        lines.append(f"last analysis: {analysis['decision']} ({analysis['reason']})")
        rows = [["METRIC", "BASELINE", "CANDIDATE", "N (B/C)", "WORSE BY", "TOLERANCE", "VERDICT"]]
        for m in analysis["metrics"]:
            rows.append(
                [
                    m["name"],
                    _num(m["baseline"]),
                    _num(m["candidate"]),
                    f"{m['baseline_n']}/{m['candidate_n']}",
                    f"[{_num(m['low'])}, {_num(m['high'])}]",
                    _num(m["tolerance"]),
                    m["verdict"],
                ]
            )
        lines.append(table(rows))
    history = found.get("history") or []
    if history:
        rows = [["AT", "ACTION", "STATE", "SHARE", "ACTOR", "REASON"]]
        for e in history:
            share = f"{e['percent']:g}%" if e.get("percent") is not None else "-"
            rows.append([f"{e['at']:.0f}", e["action"], e["to_state"], share, e["actor"], e.get("reason") or ""])
        lines.append(table(rows))
    return "\n".join(lines)


@app.command("create")
def create(
    path: Path = typer.Argument(..., help="the release as a YAML or JSON file"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create a release (pending until started)."""
    spec = read_spec(path)
    with connect(base_url, api_key) as client:
        created = _releases(client).create(spec)
    typer.echo(f"release {created['spec']['name']} created ({created['state']}); start it with `lmdeck releases start`")


@app.command("list")
def list_releases(
    state: str | None = typer.Option(None, "--state", help="keep one state (pending, canary, promoted, ...)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Releases, newest first."""
    with connect(base_url, api_key) as client:
        found = _releases(client).list(state)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    rows = [["NAME", "ROUTE", "STATE", "SHARE", "LAST DECISION"]]
    for r in found:
        last = (r.get("last_analysis") or {}).get("decision", "-")
        rows.append([r["spec"]["name"], r["spec"]["route"], r["state"], f"{r['percent']:g}%", last])
    typer.echo(table(rows))


@app.command("status")
def status(name: str, as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """State, share, the last analysis per metric and the history of a release."""
    with connect(base_url, api_key) as client:
        found = _releases(client).get(name)
    typer.echo(json.dumps(found, indent=2) if as_json else status_text(found))


def _act(name: str, action: str, reason: str | None, base_url: str | None, api_key: str | None) -> None:
    with connect(base_url, api_key) as client:
        done = _releases(client).act(name, action, reason=reason)
    typer.echo(f"release {name}: {done['event']['action']} -> {done['state']} ({done['percent']:g}% candidate)")


@app.command("start")
def start(name: str, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Start a pending release: its shadow stage, or its first canary step."""
    _act(name, "start", None, base_url, api_key)


@app.command("promote")
def promote(
    name: str, reason: str | None = REASON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY
) -> None:
    """Move a release to its next step now (from the last: promoted, the registry pointers moved)."""
    _act(name, "promote", reason, base_url, api_key)


@app.command("rollback")
def rollback(
    name: str, reason: str | None = REASON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY
) -> None:
    """Roll a release back: the baseline serves everything again (a promoted one's pointers moved back)."""
    _act(name, "rollback", reason, base_url, api_key)


@app.command("abort")
def abort(
    name: str, reason: str | None = REASON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY
) -> None:
    """Abort a release that has not finished: the baseline serves everything again."""
    _act(name, "abort", reason, base_url, api_key)
