"""``lmdeck audit``: the log of admin actions, and a check of its hash chain.

lmdeck audit list --action key.revoked
lmdeck audit verify                 # reads the store named by the config; exit 1 names the bad entry
lmdeck audit verify --data-dir DIR  # the store of a gateway started elsewhere; exit 2 when there is none
lmdeck audit verify --remote        # asks the running gateway instead
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, when

app = typer.Typer(help="The audit log of admin actions.", no_args_is_help=True)


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True) if value is not None else "-"
    return text if len(text) <= 60 else text[:57] + "..."


@app.command("list")
def list_entries(
    action: str | None = typer.Option(None, help="e.g. key.created, key.revoked, budget.changed"),
    target: str | None = typer.Option(None, help="e.g. key:key_3f9a0c1b2d4e"),
    after: int = typer.Option(0, help="entries after this sequence number"),
    limit: int = typer.Option(100, help="at most this many entries (1-1000)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Audit entries in order."""
    with connect(base_url, api_key) as client:
        entries = client.audit.list(after=after, limit=limit, action=action, target=target)
    if as_json:
        print_json(entries)
        return
    rows = [(str(e.seq), when(e.at), e.actor, e.action, e.target, _short(e.after)) for e in entries]
    print_table(("SEQ", "AT", "ACTOR", "ACTION", "TARGET", "AFTER"), rows)


@app.command("verify")
def verify(
    config: Path | None = typer.Option(None, "--config", "-c", help="lmdeck.yaml naming the store"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="the gateway's data directory (default: .lmdeck)"),
    remote: bool = typer.Option(False, "--remote", help="ask the running gateway instead of reading the store"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Check the hash chain; exit 1 naming the first edited or deleted entry."""
    if remote:
        with connect(base_url, api_key) as client:
            verdict = client.audit.verify().model_dump()
    else:
        from lmdeck.config import ConfigFileError, load_settings
        from lmdeck.db import Database
        from lmdeck.policy.audit import AuditLog
        from lmdeck.settings import ConfigError

        try:
            settings = load_settings(config, overrides={"data_dir": data_dir} if data_dir else None)
        except (ConfigFileError, ConfigError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        missing = settings.data_dir / "lmdeck.db"
        if settings.database_url is None and not missing.exists():
            # Opening it would create an empty database and report an intact, empty chain.
            typer.echo(
                f"error: no lmdeck store at {missing}: pass --data-dir (the directory `lmdeck serve` used), "
                "--config, or --remote to ask the running gateway",
                err=True,
            )
            raise typer.Exit(2)
        db = Database(settings.store_url)
        try:
            db.migrate()
            verdict = AuditLog(db).verify().to_dict()
        finally:
            db.dispose()
    if verdict["ok"]:
        typer.echo(f"audit log ok: {verdict['entries']} entries, chain intact")
        return
    typer.echo(f"audit log FAILED at entry {verdict['first_bad']}: {verdict['problem']}", err=True)
    raise typer.Exit(1)
