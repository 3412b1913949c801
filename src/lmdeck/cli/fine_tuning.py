"""``lmdeck fine-tuning``: fine-tuning jobs (``/v1/fine_tuning/jobs``).

    lmdeck fine-tuning create --model demo --dataset count-fixes@3 --register-as counter \\
        --regression-dataset skills@1 --max-steps 120 --follow
    lmdeck fine-tuning list
    lmdeck fine-tuning get ftjob-…
    lmdeck fine-tuning events ftjob-… --limit 50
    lmdeck fine-tuning cancel ftjob-…
    lmdeck fine-tuning resume ftjob-… --follow

``--follow`` draws a progress bar (step, loss, tokens/s, ETA) until the job ends, and exits 0 when it
succeeded, 1 when it was gated, failed or cancelled.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, when
from lmdeck.sdk import Client
from lmdeck.sdk.fine_tuning import FineTuning

app = typer.Typer(help="Fine-tune local models with LoRA: jobs, their progress, gate and result.", no_args_is_help=True)

HEADER = ("ID", "STATUS", "MODEL", "DATASET", "STEP", "LOSS", "RESULT", "CREATED")
FOLLOW = typer.Option(False, "--follow", "-f", help="show progress until the job ends")


def _jobs(client: Client) -> FineTuning:
    return client.namespace("fine_tuning")  # type: ignore[return-value]


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else "-" if value is None else str(value)


def _row(job: dict[str, Any]) -> tuple[str, ...]:
    progress = job.get("progress") or {}
    step = f"{progress.get('step', 0)}/{progress.get('total_steps', 0)}" if progress.get("total_steps") else "-"
    result = job.get("fine_tuned_model") or ((job.get("error") or {}).get("code")) or "-"
    return (
        job["id"],
        job["status"],
        job["model"],
        job.get("training_dataset") or job.get("training_file") or "-",
        step,
        _num(progress.get("loss")),
        result,
        when(job["created_at"]),
    )


def progress_line(job: dict[str, Any], width: int = 30) -> str:
    """``[#######-----]  42/120  loss 0.8123  310 tok/s  ETA 1m05s  running/train`` for one job."""
    p = job.get("progress") or {}
    total, step = int(p.get("total_steps") or 0), int(p.get("step") or 0)
    filled = int(width * step / total) if total else 0
    eta = p.get("eta_s")
    eta_text = f"{int(eta) // 60}m{int(eta) % 60:02d}s" if isinstance(eta, (int, float)) else "-"
    speed = p.get("tokens_per_s")
    return (
        f"[{'#' * filled}{'-' * (width - filled)}] {step:>4}/{total:<4} loss {_num(p.get('loss'))}  "
        f"{_num(speed, 0)} tok/s  ETA {eta_text}  {job['status']}/{p.get('stage', '-')}"
    )


def _summary(job: dict[str, Any]) -> None:
    typer.echo(f"{job['id']}: {job['status']}")
    if job.get("fine_tuned_model"):
        typer.echo(f"registered: {job['fine_tuned_model']}")
    if job.get("error"):
        typer.echo(f"error: {job['error']['message']}")
    gate = job.get("gate")
    if gate:
        for name in ("validation", "regression"):
            result = gate.get(name)
            if not result:
                continue
            for clause in result.get("clauses", []):
                mark = "pass" if clause["passed"] else "FAIL"
                typer.echo(f"gate {name}: {mark} {clause['clause']}: {clause['reason']}")


def _follow(client: Client, job_id: str) -> None:
    tty = sys.stdout.isatty()
    last = ""

    def show(job: dict[str, Any]) -> None:
        nonlocal last
        line = progress_line(job)
        if line != last:
            typer.echo(("\r" + line) if tty else line, nl=not tty)
            last = line

    job = _jobs(client).wait(job_id, on_progress=show, poll=1.0)
    if tty:
        typer.echo("")
    _summary(job)
    if job["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("create")
def create(
    model: str = typer.Option("demo", "--model", help="the local base model"),
    dataset: str = typer.Option(..., "--dataset", help="the training dataset version, NAME@VERSION"),
    regression_dataset: str | None = typer.Option(
        None, "--regression-dataset", help="NAME@VERSION: must not get worse"
    ),
    register_as: str | None = typer.Option(None, "--register-as", help="registry model to register the adapter into"),
    suffix: str | None = typer.Option(None, "--suffix", help="default registry name: MODEL-SUFFIX"),
    runner: str = typer.Option("local", "--runner", help="job runner: local or ray"),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, max=1_000_000),
    epochs: int | None = typer.Option(None, "--epochs", min=1, max=1000),
    learning_rate: float | None = typer.Option(None, "--learning-rate"),
    rank: int | None = typer.Option(None, "--rank", min=1, max=1024, help="LoRA rank r"),
    gate: str | None = typer.Option(None, "--gate", help="validation gate, e.g. 'delta_low(exact)>0'"),
    regression_gate: str | None = typer.Option(None, "--regression-gate", help="e.g. 'delta_low(exact)>=-0.05'"),
    evaluators: str = typer.Option("exact", "--evaluators", help="comma-separated evaluators"),
    options: str | None = typer.Option(
        None, "--options", help="more request fields as JSON (hyperparameters, prep...)"
    ),
    follow: bool = FOLLOW,
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create a job: prepare DATASET, train a LoRA adapter, gate it against the base, register it."""
    body: dict[str, Any] = json.loads(options) if options else {}
    hp = {
        **body.pop("hyperparameters", {}),
        **{
            k: v
            for k, v in {"max_steps": max_steps, "n_epochs": epochs, "learning_rate": learning_rate, "r": rank}.items()
            if v is not None
        },
    }
    gates = {
        **body.pop("gate", {}),
        **{k: v for k, v in {"validation": gate, "regression": regression_gate}.items() if v},
    }
    fields = {
        **body,
        "regression_dataset": regression_dataset,
        "register_as": register_as,
        "suffix": suffix,
        "runner": runner,
        "hyperparameters": hp or None,
        "gate": gates or None,
        "evaluators": [e.strip() for e in evaluators.split(",") if e.strip()],
    }
    with connect(base_url, api_key, timeout=60.0) as client:
        job = _jobs(client).create(model=model, training_dataset=dataset, **fields)
        if as_json and not follow:
            print_json(job)
            return
        typer.echo(f"created {job['id']} ({job['status']})")
        if follow:
            _follow(client, job["id"])


@app.command("list")
def list_jobs(
    limit: int = typer.Option(20, min=1, max=100, help="how many, newest first"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """The jobs of the key's team, newest first."""
    with connect(base_url, api_key) as client:
        jobs = _jobs(client).list(limit=limit)["data"]
    if as_json:
        print_json(jobs)
    else:
        print_table(HEADER, [_row(j) for j in jobs])


@app.command("get")
def get(
    job_id: str = typer.Argument(..., help="the job's id (ftjob-…)"),
    follow: bool = FOLLOW,
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """One job: status, progress, gate evidence, registered model."""
    with connect(base_url, api_key) as client:
        if follow:
            _follow(client, job_id)
            return
        job = _jobs(client).get(job_id)
    if as_json:
        print_json(job)
        return
    print_table(HEADER, [_row(job)])
    typer.echo(progress_line(job))
    _summary(job)


@app.command("events")
def events(
    job_id: str = typer.Argument(..., help="the job's id"),
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """The job's events, oldest of the last LIMIT first (metrics events make the loss curve)."""
    with connect(base_url, api_key) as client:
        data = _jobs(client).events(job_id, limit=limit)
    if as_json:
        print_json(data)
        return
    for event in reversed(data):
        typer.echo(f"{when(event['created_at'])}  {event['level']:<5}  {event['message']}")


@app.command("cancel")
def cancel(
    job_id: str = typer.Argument(..., help="the job's id"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Cancel a job; `resume` continues it from its newest checkpoint."""
    with connect(base_url, api_key) as client:
        job = _jobs(client).cancel(job_id)
    print_table(HEADER, [_row(job)])


@app.command("resume")
def resume(
    job_id: str = typer.Argument(..., help="the job's id"),
    follow: bool = FOLLOW,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Resume a failed or cancelled job from where it stopped."""
    with connect(base_url, api_key) as client:
        job = _jobs(client).resume(job_id)
        print_table(HEADER, [_row(job)])
        if follow:
            _follow(client, job_id)
