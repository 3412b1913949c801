"""``lmdeck models``: the model registry from the shell, through the HTTP API.

    lmdeck models add-version support-bot --provider openai --model gpt-4o-mini --metric accuracy=0.91
    lmdeck models alias support-bot production 2 --reason "beats v1 on tickets@3"
    lmdeck models rollback support-bot --alias production --reason "error rate up"
    lmdeck models history support-bot --alias production

The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY``. This module also holds what the other registry command
groups share: JSON output, ``key=value`` options, version specs, history tables.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
import yaml

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import table

app = typer.Typer(help="Registered models: versions, aliases, deployment history.", no_args_is_help=True)


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def pairs(items: list[str], what: str) -> dict[str, Any]:
    """``key=value`` options; values are read as JSON when they parse (numbers, true, lists...)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} {item!r}: write key=value")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def read_spec(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of version fields")
    return data


def history_table(moves: list[dict[str, Any]], word: str) -> str:
    rows: list[Sequence[object]] = [("WHEN", word.upper(), "FROM", "TO", "ACTION", "ACTOR", "REASON")]
    for m in moves:
        rows.append((when(m["at"]), m[word], m["from_version"], m["to_version"], m["action"], m["actor"], m["reason"]))
    return table(rows)


def move_text(name: str, pointer: str, version: int, moved: dict[str, Any]) -> str:
    """What pointing an alias (or a prompt's label) at ``version`` did."""
    if not moved["changed"]:
        return f"{name}@{pointer} already points at v{version}"
    before = f"v{moved['from_version']}" if moved["from_version"] is not None else "unset"
    return f"{name}@{pointer}: {before} → v{moved['to_version']}"


def rollback_text(name: str, pointer: str, moved: dict[str, Any]) -> str:
    return f"{name}@{pointer}: v{moved['from_version']} → v{moved['to_version']} (rolled back)"


@app.command("list")
def list_models(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """List registered models with their aliases."""
    with connect(base_url, api_key) as client:
        models = client.models.list()
    if as_json:
        echo_json(models)
        return
    rows: list[Sequence[object]] = [("NAME", "LATEST", "ALIASES", "DESCRIPTION")]
    for m in models:
        aliases = " ".join(f"{a}=v{v}" for a, v in sorted(m["aliases"].items()))
        rows.append((m["name"], m["latest_version"], aliases or "-", m["description"]))
    typer.echo(table(rows))


@app.command("show")
def show(name: str, as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """A model's versions (what serves each, metrics, lineage) and aliases."""
    with connect(base_url, api_key) as client:
        model = client.models.get(name)
    if as_json:
        echo_json(model)
        return
    typer.echo(f"{model['name']}: {model['description'] or ''}".rstrip(": "))
    aliases = {v: [a for a, n in model["aliases"].items() if n == v] for v in model["aliases"].values()}
    rows: list[Sequence[object]] = [("VERSION", "PROVIDER", "MODEL", "METRICS", "LINEAGE", "ALIASES", "CREATED")]
    for v in model["versions"]:
        metrics = " ".join(f"{k}={val}" for k, val in sorted(v["metrics"].items()))
        lineage = " ".join(f"{k}={val}" for k, val in v["lineage"].items() if val is not None)
        source = v["model"] or v["artifact_path"]
        rows.append(
            (
                v["version"],
                v["provider"],
                source,
                metrics or "-",
                lineage or "-",
                ",".join(aliases.get(v["version"], [])) or "-",
                when(v["created_at"]),
            )
        )
    typer.echo(table(rows))


@app.command("register")
def register(
    name: str,
    description: str | None = typer.Option(None, help="what the model is for"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Register a model name (versions are added with add-version)."""
    with connect(base_url, api_key) as client:
        client.models.register(name, description)
    typer.echo(f"registered {name}")


@app.command("add-version")
def add_version(
    name: str,
    spec_file: Path | None = typer.Option(None, "--file", "-f", help="YAML with the version's fields"),
    provider: str | None = typer.Option(None, help="provider serving it (openai, local, ...)"),
    model: str | None = typer.Option(None, help="the upstream model name"),
    upstream_url: str | None = typer.Option(None, "--upstream-url", help="the upstream's base URL"),
    credential: str | None = typer.Option(
        None, help="a credential the admin defined under `credentials:`, attached by the gateway"
    ),
    artifact_path: str | None = typer.Option(None, help="a local artifact instead of an upstream"),
    base_model: str | None = typer.Option(None),
    adapter: str | None = typer.Option(None),
    quantization: str | None = typer.Option(None),
    param: list[str] = typer.Option([], "--param", help="default request field, key=value (repeatable)"),
    metric: list[str] = typer.Option([], "--metric", help="metric, name=number (repeatable)"),
    tag: list[str] = typer.Option([], "--tag", help="tag, key=value (repeatable)"),
    dataset: str | None = typer.Option(None, help="lineage: dataset version trained on (name@version)"),
    training_job: str | None = typer.Option(None, help="lineage: training job id"),
    parent_version: int | None = typer.Option(None, help="lineage: the version this one derives from"),
    description: str | None = typer.Option(None),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Add an immutable version."""
    fields: dict[str, Any] = read_spec(spec_file) if spec_file else {}
    given = {
        "provider": provider,
        "model": model,
        "base_url": upstream_url,
        "credential": credential,
        "artifact_path": artifact_path,
        "base_model": base_model,
        "adapter": adapter,
        "quantization": quantization,
        "description": description,
    }
    fields.update({k: v for k, v in given.items() if v is not None})
    for key, items, what in (("parameters", param, "--param"), ("metrics", metric, "--metric"), ("tags", tag, "--tag")):
        if items:
            fields[key] = {**fields.get(key, {}), **pairs(items, what)}
    if "tags" in fields:
        fields["tags"] = {k: str(v) for k, v in fields["tags"].items()}
    lineage = {"dataset": dataset, "training_job": training_job, "parent_version": parent_version}
    if any(v is not None for v in lineage.values()):
        fields["lineage"] = {**fields.get("lineage", {}), **{k: v for k, v in lineage.items() if v is not None}}
    with connect(base_url, api_key) as client:
        try:
            created = client.models.create_version(name, **fields)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"{name} v{created['version']} ({created['digest'][:12]})")


@app.command("alias")
def alias(
    name: str,
    alias_name: str = typer.Argument(..., metavar="ALIAS"),
    version: int = typer.Argument(...),
    reason: str | None = typer.Option(None, help="why (kept in the deployment history)"),
    expected_version: int | None = typer.Option(
        None, "--expected-version", help="move only if it points at this version now (else refused)"
    ),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Point an alias at a version; routes naming registry:NAME@ALIAS follow at once."""
    with connect(base_url, api_key) as client:
        moved = client.models.alias(name, alias_name, version, reason=reason, expected_version=expected_version)
    typer.echo(move_text(name, alias_name, version, moved))


@app.command("rollback")
def rollback(
    name: str,
    alias_name: str = typer.Option("production", "--alias", help="the alias to move back"),
    reason: str | None = typer.Option(None, help="why (kept in the deployment history)"),
    expected_version: int | None = typer.Option(
        None, "--expected-version", help="move only if it points at this version now (else refused)"
    ),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Move an alias back to the version it pointed at before its last move."""
    with connect(base_url, api_key) as client:
        moved = client.models.rollback(name, alias_name, reason=reason, expected_version=expected_version)
    typer.echo(rollback_text(name, alias_name, moved))


@app.command("history")
def history(
    name: str,
    alias_name: str | None = typer.Option(None, "--alias", help="only this alias"),
    limit: int = typer.Option(100, help="most recent moves to show"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """The deployment history: every alias move, newest first."""
    with connect(base_url, api_key) as client:
        moves = client.models.history(name, alias_name, limit)
    if as_json:
        echo_json(moves)
    elif moves:
        typer.echo(history_table(moves, "alias"))
    else:
        typer.echo(f"{name} has no alias moves yet")
