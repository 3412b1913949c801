"""``lmdeck teams``: teams and their users, through the HTTP API.

lmdeck teams create search --rpm 600 --models gpt-4o-mini,demo
lmdeck teams list
lmdeck teams add-user search "Ada Lovelace" --email ada@example.com
"""

from __future__ import annotations

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, split_list, when
from lmdeck.protocol.access import TeamOut

app = typer.Typer(help="Manage teams and their users (admin).", no_args_is_help=True)

HEADER = ("ID", "NAME", "RPM", "TPM", "MODELS", "TAGS", "CREATED")


def _row(team: TeamOut) -> tuple[str, ...]:
    return (
        team.id,
        team.name,
        str(team.rpm or "-"),
        str(team.tpm or "-"),
        ",".join(team.allowed_models) if team.allowed_models is not None else "all",
        ",".join(team.allowed_tags) if team.allowed_tags is not None else "all",
        when(team.created_at),
    )


@app.command("create")
def create(
    name: str = typer.Argument(..., help="team name"),
    rpm: int | None = typer.Option(None, help="requests per minute for the whole team"),
    tpm: int | None = typer.Option(None, help="tokens per minute for the whole team"),
    models: str | None = typer.Option(None, help="allowed routes, comma-separated (default: all)"),
    tags: str | None = typer.Option(None, help="allowed tags, comma-separated (default: all)"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create a team."""
    with connect(base_url, api_key) as client:
        team = client.teams.create(
            name, rpm=rpm, tpm=tpm, allowed_models=split_list(models), allowed_tags=split_list(tags)
        )
    print_table(HEADER, [_row(team)])


@app.command("list")
def list_teams(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """List teams."""
    with connect(base_url, api_key) as client:
        teams = client.teams.list()
    if as_json:
        print_json(teams)
    else:
        print_table(HEADER, [_row(t) for t in teams])


@app.command("update")
def update(
    team: str = typer.Argument(..., help="team id or name"),
    name: str | None = typer.Option(None, help="new name"),
    rpm: int | None = typer.Option(None, help="requests per minute"),
    tpm: int | None = typer.Option(None, help="tokens per minute"),
    models: str | None = typer.Option(None, help="allowed routes, comma-separated"),
    tags: str | None = typer.Option(None, help="allowed tags, comma-separated"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Change a team's name, limits, or allowed models and tags."""
    changes = {
        "name": name,
        "rpm": rpm,
        "tpm": tpm,
        "allowed_models": split_list(models),
        "allowed_tags": split_list(tags),
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise typer.BadParameter("nothing to change: give --name, --rpm, --tpm, --models or --tags")
    with connect(base_url, api_key) as client:
        found = client.teams.get(team)
        print_table(HEADER, [_row(client.teams.update(found.id, **changes))])


@app.command("add-user")
def add_user(
    team: str = typer.Argument(..., help="team id or name"),
    name: str = typer.Argument(..., help="the user's name"),
    email: str | None = typer.Option(None, help="the user's email"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Add a user to a team (then issue keys to them with `lmdeck keys create --user`)."""
    with connect(base_url, api_key) as client:
        user = client.teams.add_user(client.teams.get(team).id, name, email=email)
    typer.echo(f"Created user {user.id} ({user.name}) in team {user.team_id}.")


@app.command("users")
def users(
    team: str | None = typer.Argument(None, help="team id or name (default: every user)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """List users."""
    with connect(base_url, api_key) as client:
        team_id = client.teams.get(team).id if team else None
        found = client.teams.users(team_id)
    if as_json:
        print_json(found)
    else:
        print_table(("ID", "NAME", "EMAIL", "TEAM"), [(u.id, u.name, u.email or "-", u.team_id or "-") for u in found])
