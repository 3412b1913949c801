"""``lmdeck spend report``: recorded cost grouped by key, team, user, route, tag or model.

lmdeck spend report --by team --period month
lmdeck spend report --by tag --period day --json
"""

from __future__ import annotations

import typer

from lmdeck.cli.budgets import usd
from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, when

app = typer.Typer(help="Spend reports.", no_args_is_help=True)

GROUPS = ("key", "team", "user", "route", "tag", "model")


@app.command("report")
def report(
    by: str = typer.Option("team", help="key, team, user, route, tag or model"),
    period: str = typer.Option("month", help="day, month or total (the current UTC period)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Cost per group in the current period."""
    if by not in GROUPS:
        raise typer.BadParameter(", ".join(GROUPS), param_hint="--by")
    if period not in ("day", "month", "total"):
        raise typer.BadParameter("day, month or total", param_hint="--period")
    with connect(base_url, api_key) as client:
        found = client.spend.report(by=by, period=period)
    if as_json:
        print_json(found)
        return
    typer.echo(f"Spend by {found.by} since {when(found.since)}: {usd(found.total_cost_micros)}")
    rows = [
        (r.group or "(none)", usd(r.cost_micros), str(r.requests), str(r.input_tokens), str(r.output_tokens))
        for r in found.data
    ]
    print_table((by.upper(), "COST", "REQUESTS", "INPUT TOKENS", "OUTPUT TOKENS"), rows)
