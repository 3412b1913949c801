"""``lmdeck sessions list`` and ``lmdeck sessions show``: requests grouped by session, through the HTTP API.

    lmdeck sessions list --since 2026-01-31T00:00:00Z --limit 20
    lmdeck sessions show chat-42 --json

The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY`` (a key with the viewer role or above; a team's key sees its team's sessions).
"""

from __future__ import annotations

from dataclasses import asdict

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import echo_json, table, when
from lmdeck.money import format_usd
from lmdeck.sdk.sessions import Session

app = typer.Typer(help="Requests grouped by session (conversation).", no_args_is_help=True)

COLUMNS = ("LAST", "SESSION", "TEAM", "REQUESTS", "ERRORS", "TOKENS", "COST", "FIRST")
TRACE_COLUMNS = ("TIME", "ID", "ROUTE", "STATUS", "LATENCY", "TOKENS", "COST")


def _row(session: Session) -> tuple[object, ...]:
    return (
        when(session.last_at),
        session.id,
        session.team_id,
        session.requests,
        session.errors,
        f"{session.input_tokens}/{session.output_tokens}",
        format_usd(session.cost_micros),
        when(session.first_at),
    )


@app.command("list")
def list_sessions(
    team_id: str | None = typer.Option(None, "--team", help="team id (an admin's choice)"),
    since: str | None = typer.Option(None, help="sessions with a request since: epoch seconds or ISO 8601"),
    until: str | None = typer.Option(None, help="counting requests before: epoch seconds or ISO 8601"),
    limit: int = typer.Option(20, help="sessions per page (1-1000)"),
    cursor: str | None = typer.Option(None, help="continue after a previous page"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """List sessions, most recently active first, with their request counts, tokens and cost."""
    with connect(base_url, api_key) as client:
        page = client.sessions.list(team_id=team_id, since=since, until=until, limit=limit, cursor=cursor)
    if as_json:
        echo_json({"data": [asdict(s) for s in page.data], "next_cursor": page.next_cursor, "has_more": page.has_more})
        return
    if not page.data:
        typer.echo("no sessions match", err=True)
        return
    typer.echo(table([COLUMNS, *(_row(s) for s in page.data)]))
    if page.has_more:
        typer.echo(f"\nmore: lmdeck sessions list ... --cursor {page.next_cursor}", err=True)


@app.command("show")
def show(
    session_id: str = typer.Argument(..., help="the session id the requests carried"),
    team_id: str | None = typer.Option(None, "--team", help="the session's team (an admin's choice)"),
    limit: int = typer.Option(200, help="traces per page (1-1000)"),
    cursor: str | None = typer.Option(None, help="continue after a previous page of its traces"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Show one session's totals and its traces, oldest first."""
    with connect(base_url, api_key) as client:
        detail = client.sessions.get(session_id, team_id=team_id, limit=limit, cursor=cursor)
    if as_json:
        echo_json(
            {
                **asdict(detail.session),
                "data": [t.to_dict() for t in detail.traces],
                "next_cursor": detail.next_cursor,
                "has_more": detail.has_more,
            }
        )
        return
    typer.echo(table([COLUMNS, _row(detail.session)]))
    typer.echo("")
    rows = [
        (
            when(t.created_at),
            t.id,
            t.route,
            t.status_code,
            f"{t.latency_ms:.0f}ms",
            f"{t.input_tokens}/{t.output_tokens}",
            format_usd(t.cost_micros),
        )
        for t in detail.traces
    ]
    typer.echo(table([TRACE_COLUMNS, *rows]))
    if detail.has_more:
        typer.echo(f"\nmore: lmdeck sessions show {session_id} --cursor {detail.next_cursor}", err=True)
