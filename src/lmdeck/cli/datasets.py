"""``lmdeck datasets``: versioned datasets from the shell, through the HTTP API.

lmdeck datasets create tickets -f tickets.jsonl
lmdeck datasets from-traces tickets --filter 'route=support status=ok since=7d'
lmdeck datasets rows tickets 2 > tickets-v2.jsonl
lmdeck datasets card tickets@2
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import echo_json, table, when

app = typer.Typer(help="Datasets: immutable versions named by content hash.", no_args_is_help=True)


def _created(version: dict[str, object]) -> str:
    state = "new version" if version["created"] else "same rows as an existing version"
    return (
        f"{version['name']} v{version['version']} ({str(version['digest'])[:12]}, {version['row_count']} rows): {state}"
    )


@app.command("list")
def list_datasets(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """List datasets."""
    with connect(base_url, api_key) as client:
        datasets = client.datasets.list()
    if as_json:
        echo_json(datasets)
        return
    rows: list[Sequence[object]] = [("NAME", "LATEST", "DESCRIPTION")]
    rows += [(d["name"], d["latest_version"], d["description"]) for d in datasets]
    typer.echo(table(rows))


@app.command("show")
def show(name: str, as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """A dataset's versions."""
    with connect(base_url, api_key) as client:
        shown = client.datasets.get(name)
    if as_json:
        echo_json(shown)
        return
    rows: list[Sequence[object]] = [("VERSION", "DIGEST", "ROWS", "SOURCE", "CREATED", "BY")]
    for v in shown["versions"]:
        source = v["source"] or {}
        origin = source.get("filter") if source.get("kind") == "traces" else source.get("kind")
        rows.append((v["version"], v["digest"][:12], v["row_count"], origin, when(v["created_at"]), v["created_by"]))
    typer.echo(table(rows))


@app.command("create")
def create(
    name: str,
    path: Path = typer.Option(..., "--file", "-f", help="JSONL: one {input, expected, metadata} per line"),
    description: str | None = typer.Option(None),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Add a version from a JSONL file (the same rows give back the same version)."""
    with connect(base_url, api_key) as client:
        version = client.datasets.upload(name, path, description=description)
    typer.echo(_created(version))


@app.command("from-traces")
def from_traces(
    name: str,
    filter: str = typer.Option(
        ...,
        "--filter",
        help="e.g. 'route=demo status=ok since=7d' or 'feedback<=0 skill=count' (keys: route, model, "
        "status, tag, skill, feedback, prompt, user, key, team, since, until, latency)",
    ),
    limit: int = typer.Option(1000, help="most traces to take"),
    corrections: str = typer.Option(
        "none", help="expected outputs from 'feedback' corrections or 'annotations' labels ('none': the answers)"
    ),
    drop_uncorrected: bool = typer.Option(
        False, "--drop-uncorrected", help="with --corrections: leave out rows nobody corrected"
    ),
    description: str | None = typer.Option(None),
    team: str | None = typer.Option(None, help="whose traces (admins only; default: the key's team)"),
    shared: bool = typer.Option(False, "--shared", help="let every team read a new dataset"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Add a version from the stored traces a filter matches (the key's team's); each row keeps its trace id."""
    with connect(base_url, api_key) as client:
        version = client.datasets.from_traces(
            name,
            filter,
            limit=limit,
            description=description,
            team=team,
            visibility="shared" if shared else None,
            corrections=corrections,
            keep_uncorrected=not drop_uncorrected,
        )
    typer.echo(_created(version))
    if version.get("skipped"):
        why = "whose bodies were not kept" + (" or that nobody corrected" if drop_uncorrected else "")
        typer.echo(f"skipped {version['skipped']} traces {why}", err=True)


@app.command("rows")
def rows(
    name: str,
    ref: str = typer.Argument(..., metavar="VERSION", help="version number or content hash"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Print a version's rows as JSONL."""
    with connect(base_url, api_key) as client:
        for row in client.datasets.rows(name, ref):
            typer.echo(json.dumps(row, sort_keys=True))


def _name_and_version(ref: str) -> tuple[str, str]:
    name, at, version = ref.rpartition("@")
    if not at or not name or not version:
        raise typer.BadParameter(f"{ref!r}: write NAME@VERSION, e.g. tickets@2", param_hint="REF")
    return name, version


@app.command("card")
def card(
    ref: str = typer.Argument(..., metavar="NAME@VERSION", help="e.g. tickets@2 (a version number or content hash)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """The data card of a version prepared for fine-tuning: counts, drops, strata, token lengths, sources."""
    name, version = _name_and_version(ref)
    with connect(base_url, api_key) as client:
        shown = client.datasets.card(name, version)
    if as_json:
        echo_json(shown)
        return
    lines = [
        f"{shown['dataset']} for {shown['base_model']} (prepared {when(shown['created_at'])})",
        f"rows in {shown['rows_in']}: train {shown['train']}, validation {shown['validation']}, "
        f"scrubbed {shown['scrubbed']}",
    ]
    dropped = shown.get("dropped") or {}
    lines.append("dropped " + (", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) if dropped else "none"))
    sources = shown.get("sources") or {}
    if sources:
        lines.append("sources " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))
    lines.append(f"traces {len(shown.get('trace_ids') or [])}")
    typer.echo("\n".join(lines))
    strata = shown.get("strata") or {}
    if strata:
        rows: list[Sequence[object]] = [("STRATUM", "TRAIN", "VALIDATION")]
        rows += [(name, n["train"], n["validation"]) for name, n in strata.items()]
        typer.echo(table(rows))
    lengths = shown.get("lengths") or {}
    if lengths:
        rows = [("SPLIT", "COUNT", "MIN", "MEAN", "P50", "P95", "MAX (tokens)")]
        rows += [(side, s["count"], s["min"], s["mean"], s["p50"], s["p95"], s["max"]) for side, s in lengths.items()]
        typer.echo(table(rows))
