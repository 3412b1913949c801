"""``lmdeck flywheel``: production traces → dataset → fine-tuning job → release, as one run.

    lmdeck flywheel run --route demo --from-traces 'feedback<=0 skill=count since=7d' \\
        --corrections annotations --base demo --register-as counter --dry-run   # the plan; changes nothing
    lmdeck flywheel run --route demo --from-traces 'feedback<=0 skill=count' --base demo --follow
    lmdeck flywheel status fw_...      # each step: status, output, progress, wall time
    lmdeck flywheel resume fw_... --follow
    lmdeck flywheel list

An API error prints its message and exits with status 1; ``--follow`` exits 1 when the run fails
(2 when the gate refused the model).
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import table
from lmdeck.sdk import Client
from lmdeck.sdk.flywheel import Flywheel

app = typer.Typer(
    help="The flywheel: traces and corrections → dataset → fine-tuned model → release.", no_args_is_help=True
)
FOLLOW = typer.Option(False, "--follow", help="show each step's progress until the run ends")
_MARK = {"succeeded": "✓", "failed": "✗", "running": "…", "pending": " ", "skipped": "-"}


def _flywheel(client: Client) -> Flywheel:
    return client.namespace("flywheel")  # type: ignore[return-value]


def _print_plan(plan: dict[str, Any]) -> None:
    for i, step in enumerate(plan["steps"], 1):
        typer.echo(f"{i}. {step['name']}: {step['describe']}")
    if plan.get("note"):
        typer.echo(f"note: {plan['note']}")


def _step_line(step: dict[str, Any]) -> str:
    wall = f" ({step['wall_s']:.1f}s)" if step.get("wall_s") is not None else ""
    detail = step.get("error") or step.get("progress") or ""
    return f"[{_MARK.get(step['status'], '?')}] {step['name']:9} {step['status']}{wall}  {detail}".rstrip()


def _print_run(run: dict[str, Any]) -> None:
    typer.echo(f"run {run['id']}: {run['status']}")
    for step in run["steps"]:
        typer.echo("  " + _step_line(step))
    if run.get("error"):
        typer.echo(f"  error: {run['error']}")


def _follow(flywheel: Flywheel, run_id: str, interval: float = 1.0) -> dict[str, Any]:
    shown: dict[str, str] = {}
    while True:
        run = flywheel.get(run_id)
        for step in run["steps"]:
            line = _step_line(step)
            if step["status"] != "pending" and shown.get(step["name"]) != line:
                shown[step["name"]] = line
                typer.echo(line)
        if run["status"] != "running":
            return run
        time.sleep(interval)


def _exit_for(run: dict[str, Any]) -> None:
    if run["status"] == "gated":
        typer.echo(f"gated: {run['error']}", err=True)
        raise typer.Exit(2)
    if run["status"] == "failed":
        typer.echo(f"failed: {run['error']} (resume with `lmdeck flywheel resume {run['id']}`)", err=True)
        raise typer.Exit(1)
    release = run["steps"][-1]["output"]
    if release.get("target"):
        typer.echo(f"serving: {release['target']}")


@app.command("run")
def run(
    route: str = typer.Option(..., "--route", help="the route whose traffic is drawn"),
    from_traces: str = typer.Option("", "--from-traces", help="trace filter, e.g. 'feedback<=0 skill=count since=7d'"),
    corrections: str = typer.Option("annotations", help="expected outputs from 'feedback', 'annotations' or 'none'"),
    keep_uncorrected: bool = typer.Option(False, "--keep-uncorrected", help="keep traces nobody corrected"),
    base: str = typer.Option(..., "--base", help="the base model to fine-tune"),
    register_as: str | None = typer.Option(None, "--register-as", help="model name (default: the route's)"),
    dataset: str | None = typer.Option(None, help="dataset name (default: <model>-flywheel)"),
    limit: int = typer.Option(1000, help="most traces to draw"),
    hyperparameters: str | None = typer.Option(None, help="JSON, e.g. '{\"max_steps\": 120}'"),
    job: str | None = typer.Option(None, "--job", help='other job fields as JSON, e.g. \'{"gate": {"min_rows": 20}}\''),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and change nothing"),
    follow: bool = FOLLOW,
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Start a flywheel run (or print its plan with --dry-run)."""
    fields: dict[str, Any] = {
        "from_traces": from_traces,
        "corrections": corrections,
        "keep_uncorrected": keep_uncorrected,
        "register_as": register_as,
        "dataset": dataset,
        "limit": limit,
        "dry_run": dry_run,
    }
    for key, text in (("hyperparameters", hyperparameters), ("job", job)):
        if text:
            try:
                fields[key] = json.loads(text)
            except ValueError as exc:
                raise typer.BadParameter(f"not JSON: {exc}", param_hint=f"--{key}") from None
    with connect(base_url, api_key) as client:
        flywheel = _flywheel(client)
        answer = flywheel.run(route=route, base=base, **fields)
        if as_json and not follow:
            typer.echo(json.dumps(answer, indent=2))
            return
        if dry_run:
            _print_plan(answer)
            return
        typer.echo(f"run {answer['id']} started")
        if follow:
            _exit_for(_follow(flywheel, answer["id"]))


@app.command("status")
def status(
    run_id: str, as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY
) -> None:
    """A run: its status and each step's status, progress, output and wall time."""
    with connect(base_url, api_key) as client:
        found = _flywheel(client).get(run_id)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    else:
        _print_run(found)


@app.command("resume")
def resume(run_id: str, follow: bool = FOLLOW, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Run a failed run again from the step that failed."""
    with connect(base_url, api_key) as client:
        flywheel = _flywheel(client)
        flywheel.resume(run_id)
        typer.echo(f"run {run_id} resumed")
        if follow:
            _exit_for(_follow(flywheel, run_id))


@app.command("list")
def list_runs(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Flywheel runs, newest first."""
    with connect(base_url, api_key) as client:
        runs = _flywheel(client).list()
    if as_json:
        typer.echo(json.dumps(runs, indent=2))
        return
    rows = [
        [r["id"], r["status"], r["request"]["route"], r["request"].get("register_as") or "", r.get("error") or ""]
        for r in runs
    ]
    typer.echo(table([["id", "status", "route", "model", "error"], *rows]))
