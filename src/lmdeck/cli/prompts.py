"""``lmdeck prompts``: the prompt registry from the shell, through the HTTP API.

lmdeck prompts create support-reply -f support-reply.yaml -m "shorter greeting"
lmdeck prompts create greet --text "Hello {{ name }}" --var name:string
lmdeck prompts label support-reply production 3 --reason "eval passed"
lmdeck prompts diff support-reply 2 3
lmdeck prompts render support-reply --var customer=Ada --label staging
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from lmdeck.cli import prompt_optimize
from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.pointers import PointerCommands, add_pointer_commands, pointer_group
from lmdeck.cli.specs import pairs, read_spec
from lmdeck.cli.tables import echo_json, table, when
from lmdeck.protocol.templates import PromptRenderError

PROMPTS = PointerCommands(
    namespace="prompts",
    word="label",
    plural="labels",
    history_name="label history",
    group_help="Prompts: versions, labels, diffs, rendering.",
    list_help="List prompts with their labels.",
    move_help="Point a label at a version; requests naming the label render it at once.",
    history_help="Every label move, newest first.",
)

app = pointer_group(PROMPTS)


@app.command("show")
def show(
    name: str,
    version: int | None = typer.Option(None, help="print this version's template"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """A prompt's versions and labels, or one version's template."""
    with connect(base_url, api_key) as client:
        if version is not None:
            prompt = client.prompts.version(name, version)
            if as_json:
                echo_json(prompt.spec.model_dump(mode="json"))
            else:
                typer.echo(
                    prompt.spec.text or "\n".join(f"[{m['role']}] {m['content']}" for m in prompt.spec.messages or [])
                )
            return
        shown = client.prompts.show(name)
    if as_json:
        echo_json(shown)
        return
    labels = {v: [a for a, n in shown["labels"].items() if n == v] for v in shown["labels"].values()}
    rows: list[Sequence[object]] = [("VERSION", "KIND", "VARIABLES", "ROUTE", "LABELS", "AUTHOR", "CREATED", "MESSAGE")]
    for v in shown["versions"]:
        variables = ",".join(f"{n}:{s['type']}" for n, s in v["variables"].items())
        rows.append(
            (
                v["version"],
                "text" if v["text"] is not None else "chat",
                variables or "-",
                v["route"],
                ",".join(labels.get(v["version"], [])) or "-",
                v["created_by"],
                when(v["created_at"]),
                v["commit_message"],
            )
        )
    typer.echo(table(rows))


@app.command("create")
def create(
    name: str,
    spec_file: Path | None = typer.Option(None, "--file", "-f", help="YAML with the version (messages or text, ...)"),
    text: str | None = typer.Option(None, help="a text template"),
    var: list[str] = typer.Option(
        [], "--var", help="declared variable, name:type (repeatable; type defaults to string)"
    ),
    param: list[str] = typer.Option([], "--param", help="default request field, key=value (repeatable)"),
    route: str | None = typer.Option(None, help="route called when a request names none"),
    message: str | None = typer.Option(None, "--message", "-m", help="commit message"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Add an immutable version."""
    fields: dict[str, Any] = read_spec(spec_file) if spec_file else {}
    if text is not None:
        fields["text"] = text
    for item in var:
        variable, _, kind = item.partition(":")
        fields.setdefault("variables", {})[variable] = kind or "string"
    if param:
        fields["parameters"] = {**fields.get("parameters", {}), **pairs(param, "--param")}
    if route is not None:
        fields["route"] = route
    if message is not None:
        fields["commit_message"] = message
    with connect(base_url, api_key) as client:
        try:
            created = client.prompts.create(name, **fields)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"{name} v{created.version} ({(created.digest or '')[:12]})")


add_pointer_commands(app, PROMPTS)


@app.command("diff")
def diff(
    name: str,
    from_version: int = typer.Argument(..., metavar="FROM"),
    to_version: int = typer.Argument(..., metavar="TO"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """What changed between two versions: the template, then every other field."""
    with connect(base_url, api_key) as client:
        changes = client.prompts.diff(name, from_version, to_version)
    typer.echo(changes["template"] or f"(template unchanged between v{from_version} and v{to_version})")
    for key, change in changes["changes"].items():
        typer.echo(f"{key}: {change['from']!r} → {change['to']!r}")


@app.command("render")
def render(
    name: str,
    var: list[str] = typer.Option([], "--var", help="variable, key=value (JSON values are parsed; repeatable)"),
    label_name: str | None = typer.Option(None, "--label", help="label (default production)"),
    version: int | None = typer.Option(None, help="a version instead of a label"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Render a prompt locally with the same sandbox the gateway uses."""
    with connect(base_url, api_key) as client:
        prompt = client.prompts.get(name, label=label_name, version=version, cache_ttl=0)
    try:
        rendered = prompt.render(pairs(var, "--var"))
    except PromptRenderError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if isinstance(rendered, str):
        typer.echo(rendered)
    else:
        echo_json(rendered)


prompt_optimize.register(app)
