"""``lmdeck spend``: recorded cost grouped by key, team, user, route, tag or model, and what the cache saved.

lmdeck spend report --by team --period month
lmdeck spend report --by tag --period day --json
lmdeck spend --savings --by route                # cache hits, hit rate, tokens and dollars saved
"""

from __future__ import annotations

import typer

from lmdeck.cli.budgets import usd
from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, when
from lmdeck.protocol.access import SpendReport

app = typer.Typer(help="Spend reports, and what the response cache saved (--savings).", no_args_is_help=True)

GROUPS = ("key", "team", "user", "route", "tag", "model")
#: Groupings whose rows count cache hits and savings (the user and tag breakdowns do not).
SAVINGS_GROUPS = ("key", "team", "route", "model")

BY = typer.Option("team", help="key, team, user, route, tag or model")
PERIOD = typer.Option("month", help="day, month or total (the current UTC period)")


def _fetch(by: str, period: str, base_url: str | None, api_key: str | None, groups: tuple[str, ...]) -> SpendReport:
    if by not in groups:
        raise typer.BadParameter(", ".join(groups), param_hint="--by")
    if period not in ("day", "month", "total"):
        raise typer.BadParameter("day, month or total", param_hint="--period")
    with connect(base_url, api_key) as client:
        return client.spend.report(by=by, period=period)


def _print_savings(found: SpendReport, by: str) -> None:
    typer.echo(
        f"Cache savings by {found.by} since {when(found.since)}: {usd(found.total_saved_micros)} saved, "
        f"{usd(found.total_cost_micros)} spent"
    )
    rows = [
        (
            r.group or "(none)",
            str(r.requests),
            str(r.cache_hits or 0),
            f"{(r.cache_hit_rate or 0.0) * 100:.1f}%",
            str(r.saved_tokens or 0),
            usd(r.saved_micros or 0),
            usd(r.cost_micros),
        )
        for r in found.data
    ]
    print_table((by.upper(), "REQUESTS", "CACHE HITS", "HIT RATE", "TOKENS SAVED", "SAVED", "COST"), rows)


@app.callback(invoke_without_command=True)
def spend(
    ctx: typer.Context,
    savings: bool = typer.Option(False, "--savings", help="what the response cache saved, per group"),
    by: str = BY,
    period: str = PERIOD,
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Spend reports; with --savings, cache hits, hit rate and the tokens and dollars the cache saved."""
    if ctx.invoked_subcommand is not None:
        return
    if not savings:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    found = _fetch(by, period, base_url, api_key, SAVINGS_GROUPS)
    if as_json:
        print_json(found)
        return
    _print_savings(found, by)


@app.command("report")
def report(
    by: str = BY,
    period: str = PERIOD,
    savings: bool = typer.Option(False, "--savings", help="show cache hits and savings instead of cost"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Cost per group in the current period."""
    found = _fetch(by, period, base_url, api_key, SAVINGS_GROUPS if savings else GROUPS)
    if as_json:
        print_json(found)
        return
    if savings:
        _print_savings(found, by)
        return
    typer.echo(f"Spend by {found.by} since {when(found.since)}: {usd(found.total_cost_micros)}")
    rows = [
        (r.group or "(none)", usd(r.cost_micros), str(r.requests), str(r.input_tokens), str(r.output_tokens))
        for r in found.data
    ]
    print_table((by.upper(), "COST", "REQUESTS", "INPUT TOKENS", "OUTPUT TOKENS"), rows)
