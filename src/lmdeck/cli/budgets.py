"""``lmdeck budgets``: spending limits per key and team, through the HTTP API.

lmdeck budgets set --team team_1a2b --period month --limit 250 --soft 0.8
lmdeck budgets list
lmdeck budgets alerts
"""

from __future__ import annotations

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, when
from lmdeck.money import format_usd
from lmdeck.protocol.access import BudgetOut

app = typer.Typer(help="Manage budgets per key and team.", no_args_is_help=True)

HEADER = ("ID", "SCOPE", "SUBJECT", "PERIOD", "LIMIT", "SPENT", "RESERVED", "LEFT", "SINCE")


def usd(micros: int) -> str:
    """An amount of micro-dollars as dollars, exactly (``$1,234.567890``)."""
    return format_usd(micros)


def _row(b: BudgetOut) -> tuple[str, ...]:
    return (
        b.id,
        b.scope,
        b.subject_id,
        b.period,
        usd(b.limit_micros),
        usd(b.spent_micros),
        usd(b.reserved_micros),
        usd(b.remaining_micros),
        when(b.window_start) if b.period != "total" else "-",
    )


@app.command("set")
def set_budget(
    key: str | None = typer.Option(None, "--key", help="key id"),
    team: str | None = typer.Option(None, "--team", help="team id"),
    period: str = typer.Option("month", help="day, month or total"),
    limit: float = typer.Option(..., help="US dollars per period"),
    soft: float | None = typer.Option(None, help="share of the limit that raises an alert, e.g. 0.8"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create or change the budget of a key or a team."""
    if (key is None) == (team is None):
        raise typer.BadParameter("give exactly one of --key or --team")
    scope, subject = ("key", key) if key is not None else ("team", team)
    assert subject is not None
    if period not in ("day", "month", "total"):
        raise typer.BadParameter("day, month or total", param_hint="--period")
    with connect(base_url, api_key) as client:
        budget = client.budgets.set(scope, subject, period, limit_usd=limit, soft_limit=soft)  # type: ignore[arg-type]
    print_table(HEADER, [_row(budget)])


@app.command("list")
def list_budgets(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Budgets with what is spent, reserved and left this period."""
    with connect(base_url, api_key) as client:
        budgets = client.budgets.list()
    if as_json:
        print_json(budgets)
    else:
        print_table(HEADER, [_row(b) for b in budgets])


@app.command("delete")
def delete(
    budget_id: str = typer.Argument(..., help="budget id"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Remove a budget."""
    with connect(base_url, api_key) as client:
        client.budgets.delete(budget_id)
    typer.echo(f"Deleted budget {budget_id}.")


@app.command("alerts")
def alerts(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Recent budget alerts: soft limits crossed, budgets used up."""
    with connect(base_url, api_key) as client:
        found = client.budgets.alerts()
    if as_json:
        print_json(found)
        return
    rows = [
        (
            when(a.at),
            a.kind,
            f"{a.budget['scope']} {a.budget['subject_id']}",
            a.budget["period"],
            usd(a.spent_micros),
            usd(int(a.budget["limit_micros"])),
        )
        for a in found
    ]
    print_table(("AT", "KIND", "SUBJECT", "PERIOD", "SPENT", "LIMIT"), rows)
