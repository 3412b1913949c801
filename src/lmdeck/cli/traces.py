"""``lmdeck traces list`` and ``lmdeck traces show``: the stored traces, through the HTTP API;
``lmdeck traces rollup --rebuild`` and ``lmdeck traces prune``: the rollups recomputed, old data deleted, in the store.

    lmdeck traces list --route demo --status error --limit 20
    lmdeck traces list --since 2026-01-31T00:00:00Z --json
    lmdeck traces show 01a2077...
    lmdeck traces hold 01a2077... --reason "litigation 2026-114"     # and `lmdeck traces release ID` (admin)

The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY`` (a key with the viewer role or above).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, BASE_URL, connect
from lmdeck.cli.tables import table
from lmdeck.money import format_usd
from lmdeck.protocol.traces import TraceRecord

app = typer.Typer(help="Query the stored traces.", no_args_is_help=True)

COLUMNS = ("TIME", "ID", "ROUTE", "MODEL", "STATUS", "LATENCY", "TOKENS", "COST")


def _row(trace: TraceRecord) -> tuple[str, ...]:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(trace.created_at))
    return (
        when,
        trace.id,
        trace.route or "-",
        trace.upstream_model or "-",
        str(trace.status_code),
        f"{trace.latency_ms:.0f}ms",
        f"{trace.input_tokens}/{trace.output_tokens}",
        format_usd(trace.cost_micros),
    )


@app.command("list")
def list_traces(
    route: str | None = typer.Option(None, help="public model name"),
    model: str | None = typer.Option(None, help="upstream model"),
    status: str | None = typer.Option(None, help="HTTP status code, 'ok' or 'error'"),
    key_id: str | None = typer.Option(None, "--key", help="API key id"),
    team_id: str | None = typer.Option(None, "--team", help="team id"),
    user: str | None = typer.Option(None, help="end user"),
    tag: str | None = typer.Option(None, help="tag"),
    prompt: str | None = typer.Option(None, help="prompt name"),
    prompt_version: int | None = typer.Option(None, "--prompt-version", min=1, help="prompt version"),
    release: str | None = typer.Option(None, help="the release that served the request"),
    since: str | None = typer.Option(None, help="epoch seconds or ISO 8601"),
    until: str | None = typer.Option(None, help="epoch seconds or ISO 8601"),
    min_latency_ms: float | None = typer.Option(None, "--min-latency", help="milliseconds"),
    q: str | None = typer.Option(None, "--search", help="text in errors, metadata or bodies"),
    limit: int = typer.Option(20, help="traces per page (1-1000)"),
    cursor: str | None = typer.Option(None, help="continue after a previous page"),
    as_json: bool = typer.Option(False, "--json", help="print the page as JSON"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """List traces, newest first."""
    with connect(base_url, api_key) as client:
        page = client.traces.list(
            route=route,
            model=model,
            status=status,
            key_id=key_id,
            team_id=team_id,
            user=user,
            tag=tag,
            prompt=prompt,
            prompt_version=prompt_version,
            release=release,
            since=since,
            until=until,
            min_latency_ms=min_latency_ms,
            q=q,
            limit=limit,
            cursor=cursor,
        )
    if as_json:
        body: dict[str, Any] = {
            "data": [t.to_dict() for t in page.data],
            "next_cursor": page.next_cursor,
            "has_more": page.has_more,
        }
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    if not page.data:
        typer.echo("no traces match", err=True)
        return
    typer.echo(table([COLUMNS, *(_row(t) for t in page.data)]))
    if page.has_more:
        typer.echo(f"\nmore: lmdeck traces list ... --cursor {page.next_cursor}", err=True)


@app.command("show")
def show(
    trace_id: str = typer.Argument(..., help="the trace's id"),
    as_json: bool = typer.Option(False, "--json", help="print the trace as JSON"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Show one trace with its request and response."""
    with connect(base_url, api_key) as client:
        trace = client.traces.get(trace_id)
    data = trace.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    bodies = {k: data.pop(k) for k in ("request_body", "response_body", "metadata")}
    width = max(len(k) for k in data)
    for key, value in data.items():
        if value is None or value == [] or value == {}:
            continue
        typer.echo(f"{key.ljust(width)}  {value}")
    for key, value in bodies.items():
        if value:
            typer.echo(f"\n{key}:\n{json.dumps(value, indent=2, ensure_ascii=False)}")


def _open_store(config: Path | None, data_dir: Path | None) -> tuple[Any, Any]:
    """(settings, migrated Database) of the gateway's store; exit 2 naming the fix when there is none."""
    from lmdeck.config import ConfigFileError, load_settings
    from lmdeck.db import Database
    from lmdeck.settings import ConfigError

    try:
        settings = load_settings(config, overrides={"data_dir": data_dir} if data_dir else None)
    except (ConfigFileError, ConfigError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if settings.database_url is None and not (settings.data_dir / "lmdeck.db").exists():
        typer.echo(
            f"error: no lmdeck store at {settings.data_dir / 'lmdeck.db'}: pass --data-dir (the directory "
            "`lmdeck serve` used) or --config",
            err=True,
        )
        raise typer.Exit(2)
    db = Database(settings.store_url)
    db.migrate()
    return settings, db


CONFIG = typer.Option(None, "--config", "-c", help="lmdeck.yaml naming the store")
DATA_DIR = typer.Option(None, "--data-dir", help="the gateway's data directory (default: .lmdeck)")


@app.command("rollup")
def rollup(
    rebuild: bool = typer.Option(False, "--rebuild", help="recompute the rollups from the raw traces"),
    config: Path | None = CONFIG,
    data_dir: Path | None = DATA_DIR,
) -> None:
    """Recompute the trace rollups (spend, latency, error rates) of the days the raw traces cover, in the store.

    Safe while the gateway runs: its writer waits for the rebuild, then adds what arrived meanwhile.
    Rollups older than the oldest raw trace (pruned by retention) are kept.
    """
    if not rebuild:
        typer.echo("error: say what to do: --rebuild recomputes the rollups from the raw traces", err=True)
        raise typer.Exit(2)
    from lmdeck.tracing.rollups import rebuild as rebuild_rollups

    _, db = _open_store(config, data_dir)
    try:
        started = time.monotonic()
        read = rebuild_rollups(db)
    finally:
        db.dispose()
    typer.echo(f"rebuilt the rollups from {read} traces in {time.monotonic() - started:.1f}s")


@app.command("prune")
def prune(config: Path | None = CONFIG, data_dir: Path | None = DATA_DIR) -> None:
    """Delete the trace data that tracing.retention no longer keeps (raw traces first; rollups outlive them)."""
    from lmdeck.policy.audit import AuditLog
    from lmdeck.tracing.retention import Retention
    from lmdeck.tracing.retention import prune as prune_store
    from lmdeck.tracing.retention_job import run_report
    from lmdeck.tracing.retention_policies import RetentionPolicyStore

    settings, db = _open_store(config, data_dir)
    try:
        retention = settings.tracing.retention
        pruned = prune_store(
            db,
            Retention.from_settings(retention),
            now=time.time(),
            stored=RetentionPolicyStore(db).list(),
            batch=retention.batch_size,
        )
        AuditLog(db).append("cli:retention", "retention.run", "traces", after=run_report(pruned))
    finally:
        db.dispose()
    for expired in pruned.by_policy:
        typer.echo(f"  {expired.policy}: {expired.traces} traces deleted, {expired.bodies} bodies cleared")
    typer.echo(
        f"deleted {pruned.traces} traces (cleared the bodies of {pruned.bodies}), {pruned.minute_rollups} minute "
        f"rollups and {pruned.rollups} hour/day rollups"
    )


@app.command("hold")
def hold(
    trace_id: str = typer.Argument(..., help="the trace's id"),
    reason: str | None = typer.Option(None, help="why it is kept (in the audit log)"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Put a trace on legal hold: retention neither deletes it nor clears its bodies (admin)."""
    with connect(base_url, api_key) as client:
        result = client.post(f"/api/traces/{trace_id}/hold", json={"reason": reason})
    typer.echo(f"trace {trace_id} is on legal hold" + ("" if result["changed"] else " (it already was)"))


@app.command("release")
def release(
    trace_id: str = typer.Argument(..., help="the trace's id"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Release a trace's legal hold: retention treats it like any other again (admin)."""
    with connect(base_url, api_key) as client:
        result = client.delete(f"/api/traces/{trace_id}/hold")
    typer.echo(f"trace {trace_id} is released" + ("" if result["changed"] else " (it was not held)"))
