"""``lmdeck retention``: per team and per route retention of bodies and traces (admin).

    lmdeck retention list
    lmdeck retention set a-bodies --team team-a --body-days 7
    lmdeck retention set support --route support --body-days 3 --trace-days 90
    lmdeck retention delete a-bodies

Policies can also be declared in the config file (``tracing.retention.policies``) and synced
with ``lmdeck apply``. The background job applies them at its next run.
"""

from __future__ import annotations

import typer

from lmdeck.cli.connection import API_KEY, BASE_URL, connect
from lmdeck.cli.tables import table

app = typer.Typer(help="Per team and per route retention policies (admin).", no_args_is_help=True)


def _days(value: int | None) -> str:
    return "-" if value is None else f"{value}d"


@app.command("list")
def list_policies(base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """The retention policies in force, stored and configured."""
    with connect(base_url, api_key) as client:
        policies = client.get("/api/retention/policies")["data"]
    rows = [
        (p["name"], p["team"] or "*", p["route"] or "*", _days(p["body_days"]), _days(p["trace_days"]), p["source"])
        for p in policies
    ]
    typer.echo(table([("NAME", "TEAM", "ROUTE", "BODIES", "TRACES", "SOURCE"), *rows]))


@app.command("set")
def set_policy(
    name: str = typer.Argument(..., help="the policy's name"),
    team: str | None = typer.Option(None, help="team id (omit: every team)"),
    route: str | None = typer.Option(None, help="route (omit: every route)"),
    body_days: int | None = typer.Option(None, "--body-days", help="days request/response bodies are kept"),
    trace_days: int | None = typer.Option(None, "--trace-days", help="days whole traces are kept"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create or replace a stored retention policy."""
    body = {"name": name, "team": team, "route": route, "body_days": body_days, "trace_days": trace_days}
    with connect(base_url, api_key) as client:
        result = client.put(f"/api/retention/policies/{name}", json=body)
    typer.echo(f"{'created' if result['created'] else 'updated'} retention policy {name}")


@app.command("delete")
def delete_policy(
    name: str = typer.Argument(..., help="the policy's name"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Delete a stored retention policy."""
    with connect(base_url, api_key) as client:
        client.delete(f"/api/retention/policies/{name}")
    typer.echo(f"deleted retention policy {name}")
