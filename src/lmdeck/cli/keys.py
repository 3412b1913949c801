"""``lmdeck keys``: create, list, change, rotate and revoke API keys, through the HTTP API.

    lmdeck keys create --name ci-bot --role developer --team search --expires-in 30d
    lmdeck keys list
    lmdeck keys rotate key_3f9a0c1b2d4e --grace 1h
    lmdeck keys revoke key_3f9a0c1b2d4e

The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY`` (an admin key). This module also holds what the other access
command groups (teams, budgets, spend, audit) share: tables, JSON output, durations.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import BaseModel

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import table
from lmdeck.protocol.access import KeyCreated, KeyOut

app = typer.Typer(help="Manage API keys (admin).", no_args_is_help=True)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str | None, option: str) -> float | None:
    """``90``, ``90s``, ``15m``, ``12h``, ``30d`` or ``2w`` in seconds."""
    if text is None:
        return None
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not found:
        raise typer.BadParameter(f"{text!r}: write a duration such as 90s, 15m, 12h or 30d", param_hint=option)
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def split_list(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text is not None else None


def when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment)) if moment else "-"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    typer.echo(table([header, *rows]))


def print_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    typer.echo(json.dumps(data, indent=2))


def _key_rows(keys: Sequence[KeyOut]) -> list[tuple[str, ...]]:
    return [
        (k.id, k.name, k.role, k.prefix or "-", k.state, k.team_id or "-", when(k.expires_at), when(k.created_at))
        for k in keys
    ]


def _shown_once(created: KeyCreated, what: str) -> None:
    typer.echo(f"{what} {created.id} ({created.name}, {created.role}).")
    typer.echo("The key, shown this once (store it now):")
    typer.echo(f"  {created.key}")


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="what the key is for"),
    role: str = typer.Option("inference", help="admin, developer, viewer or inference (only /v1/*)"),
    team: str | None = typer.Option(None, help="team id or name"),
    user: str | None = typer.Option(None, help="user id or name (the key joins the user's team)"),
    expires_in: str | None = typer.Option(None, "--expires-in", help="e.g. 30d, 12h"),
    models: str | None = typer.Option(None, help="allowed routes, comma-separated (default: all)"),
    tags: str | None = typer.Option(None, help="allowed tags, comma-separated (default: all)"),
    rpm: int | None = typer.Option(None, help="requests per minute"),
    tpm: int | None = typer.Option(None, help="tokens per minute"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create a key; it is printed once and never again."""
    with connect(base_url, api_key) as client:
        created = client.keys.create(
            name,
            role=role,
            team_id=team,
            user_id=user,
            expires_in=parse_duration(expires_in, "--expires-in"),
            allowed_models=split_list(models),
            allowed_tags=split_list(tags),
            rpm=rpm,
            tpm=tpm,
        )
    if as_json:
        print_json(created)
    else:
        _shown_once(created, "Created key")


@app.command("list")
def list_keys(
    team: str | None = typer.Option(None, help="only this team's keys"),
    active: bool = typer.Option(False, "--active", help="leave out revoked keys"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """List keys (their prefixes, never the keys)."""
    with connect(base_url, api_key) as client:
        keys = client.keys.list(team_id=team, include_revoked=not active)
    if as_json:
        print_json(keys)
    else:
        print_table(("ID", "NAME", "ROLE", "PREFIX", "STATE", "TEAM", "EXPIRES", "CREATED"), _key_rows(keys))


@app.command("update")
def update(
    key_id: str = typer.Argument(..., help="key id"),
    role: str | None = typer.Option(None, help="new role"),
    name: str | None = typer.Option(None, help="new name"),
    team: str | None = typer.Option(None, help="move to this team"),
    models: str | None = typer.Option(None, help="allowed routes, comma-separated"),
    tags: str | None = typer.Option(None, help="allowed tags, comma-separated"),
    rpm: int | None = typer.Option(None, help="requests per minute"),
    tpm: int | None = typer.Option(None, help="tokens per minute"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Change a key's role, name, team, limits, or allowed models and tags."""
    changes = {
        "role": role,
        "name": name,
        "team_id": team,
        "allowed_models": split_list(models),
        "allowed_tags": split_list(tags),
        "rpm": rpm,
        "tpm": tpm,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise typer.BadParameter("nothing to change: give --role, --name, --team, --models, --tags, --rpm or --tpm")
    with connect(base_url, api_key) as client:
        key = client.keys.update(key_id, **changes)
    print_table(("ID", "NAME", "ROLE", "PREFIX", "STATE", "TEAM", "EXPIRES", "CREATED"), _key_rows([key]))


@app.command("rotate")
def rotate(
    key_id: str = typer.Argument(..., help="key id"),
    grace: str | None = typer.Option(None, help="how long the old key keeps working, e.g. 1h (default: server's)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Give a key a new secret; the old one keeps working for the grace period."""
    with connect(base_url, api_key) as client:
        created = client.keys.rotate(key_id, grace_seconds=parse_duration(grace, "--grace"))
    if as_json:
        print_json(created)
    else:
        _shown_once(created, "Rotated key")


@app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="key id"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Revoke a key: it stops working at once."""
    with connect(base_url, api_key) as client:
        key = client.keys.revoke(key_id)
    typer.echo(f"Revoked key {key.id} ({key.name}).")
