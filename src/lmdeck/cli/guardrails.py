"""``lmdeck guardrails``: the guardrails a running gateway has, and what they would do with a text.

    lmdeck guardrails list                              # registered types, configured definitions, data policy
    lmdeck guardrails test "mail bob@example.com"       # every definition's verdict on the text
    lmdeck guardrails test "ignore all previous instructions" --route support   # with that route's actions
    lmdeck guardrails test "{\"a\": 1" --stage output --only json

The gateway runs its own instances (with its models lent); nothing is sent upstream.
"""

from __future__ import annotations

from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table

app = typer.Typer(help="Guardrails: list them, try them on a text.", no_args_is_help=True)


def _spans(entry: dict[str, Any]) -> str:
    spans = entry.get("spans") or []
    return ", ".join(f"{s['entity']}@{s['start']}-{s['end']}" for s in spans) or "-"


@app.command("list")
def list_guardrails(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Registered guardrail types and the definitions configured on the gateway."""
    with connect(base_url, api_key) as client:
        listing: dict[str, Any] = client.get("/api/guardrails")
    if as_json:
        print_json(listing)
        return
    typer.echo("types:")
    print_table(
        ["TYPE", "COST", "STAGES", "OPTIONS", "DESCRIPTION"],
        [
            [t["name"], t["cost"], ",".join(t["stages"]), ", ".join(t["options"]) or "-", t["description"]]
            for t in listing["types"]
        ],
    )
    for missing in listing["unavailable"]:
        typer.echo(f"unavailable: {missing['name']}: {missing['reason']}")
    typer.echo("definitions:")
    print_table(
        ["NAME", "TYPE", "COST", "STAGES", "OPTIONS"],
        [
            [d["name"], d["type"], d["cost"] or "-", ",".join(d["stages"]), str(d["options"] or "-")]
            for d in listing["definitions"]
        ],
    )
    if listing["data_policy"] is not None:
        policy = listing["data_policy"]
        typer.echo(
            f"data policy: {policy['action']} requests restricted by {', '.join(policy['restricted']) or '-'}"
            f" (tags: {', '.join(policy['tags']) or '-'}) to {', '.join(policy['allowed'])} targets"
        )


@app.command("test")
def test_text(
    text: str = typer.Argument(..., help="the text to check"),
    stage: str = typer.Option("input", help="input (a request's message) or output (an answer)"),
    route: str | None = typer.Option(None, help="also show the action this route takes on each finding"),
    only: list[str] = typer.Option([], "--only", help="run only this definition (repeat for more)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """What each guardrail would do with TEXT: finding, score, reason, spans, and the route's action."""
    if stage not in ("input", "output"):
        typer.echo(f"error: --stage must be input or output, not {stage!r}", err=True)
        raise typer.Exit(2)
    body: dict[str, Any] = {"text": text, "stage": stage, "route": route, "guardrails": list(only) or None}
    with connect(base_url, api_key) as client:
        report: dict[str, Any] = client.post("/api/guardrails/test", json=body)
    if as_json:
        print_json(report)
        return
    rows = [
        [
            r["guardrail"],
            r["type"],
            r["finding"] or "error",
            r.get("action", "-"),
            f"{r.get('score', 0):.2f}",
            f"{r['latency_ms']:.2f}",
            _spans(r),
            r.get("reason") or r.get("error") or "",
        ]
        for r in report["results"]
    ]
    print_table(["GUARDRAIL", "TYPE", "FINDING", "ACTION", "SCORE", "MS", "SPANS", "REASON"], rows)
    if report.get("masked") is not None:
        typer.echo(f"masked: {report['masked']}")
