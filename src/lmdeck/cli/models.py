"""``lmdeck models``: the model registry from the shell, through the HTTP API.

    lmdeck models add-version support-bot --provider openai --model gpt-4o-mini --metric accuracy=0.91
    lmdeck models alias support-bot production 2 --reason "beats v1 on tickets@3"
    lmdeck models rollback support-bot --alias production --reason "error rate up"
    lmdeck models history support-bot --alias production

The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY``. ``list``, ``alias``, ``rollback`` and ``history`` are the pointer commands
every registry kind has (:mod:`lmdeck.cli.pointers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.pointers import PointerCommands, add_pointer_commands, pointer_group
from lmdeck.cli.specs import pairs, read_spec
from lmdeck.cli.tables import echo_json, table, when

MODELS = PointerCommands(
    namespace="models",
    word="alias",
    plural="aliases",
    history_name="deployment history",
    group_help="Registered models: versions, aliases, deployment history.",
    list_help="List registered models with their aliases.",
    move_help="Point an alias at a version; routes naming registry:NAME@ALIAS follow at once.",
    history_help="The deployment history: every alias move, newest first.",
)

app = pointer_group(MODELS)


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


add_pointer_commands(app, MODELS)
