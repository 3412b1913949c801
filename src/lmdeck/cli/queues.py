"""``lmdeck queues``: annotation queues of traces for people to label (see docs/monitoring.md).

    lmdeck queues create support-review --route support --status any --feedback-below thumbs=0.5 \\
        --category wrong --category ok --dataset support-fixes
    lmdeck queues list
    lmdeck queues add support-review 0190f3... 0190f4... --reason "odd answers"
    lmdeck queues next support-review                        # claims the next item, prints its trace
    lmdeck queues label support-review ITEM --claim TOKEN --score 0 --category wrong --correction "4"
    lmdeck queues export support-review                      # corrections -> a dataset version

Queues can also be declared in the config file (``evaluation.annotation_queues``) and synced with
``lmdeck apply`` (kind AnnotationQueue).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import table

app = typer.Typer(help="Annotation queues: label traces, turn corrections into dataset rows.", no_args_is_help=True)


def _threshold(text: str | None, key: str) -> dict[str, Any] | None:
    if text is None:
        return None
    name, eq, value = text.partition("=")
    try:
        return {key: name, "value": float(value)} if eq and name else None
    except ValueError:
        return None


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@app.command("create")
def create(
    name: str = typer.Argument(..., help="the queue's name"),
    route: str | None = typer.Option(None, help="rule: traces of this route"),
    status: str | None = typer.Option(None, help="rule: ok, error or any (default: any)"),
    feedback_below: str | None = typer.Option(None, "--feedback-below", help="rule: NAME=VALUE, feedback under it"),
    score_below: str | None = typer.Option(None, "--score-below", help="rule: EVALUATOR=VALUE, online score under it"),
    guardrail: bool = typer.Option(False, "--guardrail", help="rule: traces a guardrail acted on"),
    sample_rate: float | None = typer.Option(None, "--sample-rate", help="rule: share of matching traces, 0..1"),
    category: list[str] = typer.Option([], "--category", help="an allowed category (repeat)"),
    dataset: str | None = typer.Option(None, help="where export writes (default: the queue's name)"),
    description: str | None = typer.Option(None, help="what the queue is for"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create or replace a queue; with any rule option, traces matching it enter on their own."""
    spec: dict[str, Any] = {"name": name, "categories": category, "dataset": dataset, "description": description}
    for text, key, option in (
        (feedback_below, "name", "--feedback-below"),
        (score_below, "evaluator", "--score-below"),
    ):
        if text is not None and _threshold(text, key) is None:
            typer.echo(f"error: {option} takes NAME=NUMBER, got {text!r}", err=True)
            raise typer.Exit(2)
    if any(v is not None for v in (route, status, feedback_below, score_below, sample_rate)) or guardrail:
        rule: dict[str, Any] = {"filter": {"route": route, "status": status or "any"}, "guardrail": guardrail}
        if sample_rate is not None:
            rule["sample_rate"] = sample_rate
        if feedback_below is not None:
            rule["feedback_below"] = _threshold(feedback_below, "name")
        if score_below is not None:
            rule["score_below"] = _threshold(score_below, "evaluator")
        spec["rule"] = rule
    with connect(base_url, api_key) as client:
        result = client.put(f"/api/annotation-queues/{name}", json=spec)
    typer.echo(f"{'created' if result['created'] else 'updated'} annotation queue {name}")


@app.command("list")
def list_queues(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Your team's queues with their pending, claimed and labelled items."""
    with connect(base_url, api_key) as client:
        queues = client.get("/api/annotation-queues")["data"]
    if as_json:
        typer.echo(json.dumps(queues, indent=2))
        return
    rows = [
        (
            q["name"],
            q["team_id"],
            q["counts"]["pending"],
            q["counts"]["claimed"],
            q["counts"]["labelled"],
            q["dataset"] or q["name"],
        )
        for q in queues
    ]
    typer.echo(table([("NAME", "TEAM", "PENDING", "CLAIMED", "LABELLED", "DATASET"), *rows]))


@app.command("add")
def add(
    name: str = typer.Argument(..., help="the queue"),
    trace_ids: list[str] = typer.Argument(..., help="trace ids"),
    reason: str | None = typer.Option(None, help="why they need a look"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Send traces to a queue by hand."""
    with connect(base_url, api_key) as client:
        result = client.post(f"/api/annotation-queues/{name}/items", json={"trace_ids": trace_ids, "reason": reason})
    typer.echo(f"added {len(result['added'])} trace(s), {len(result['already_queued'])} already queued")


@app.command("next")
def next_item(
    name: str = typer.Argument(..., help="the queue"),
    lease_s: float | None = typer.Option(None, "--lease", help="seconds to hold it (default: the queue's)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Claim the next item: prints its id, the claim token to label it with, and the trace."""
    with connect(base_url, api_key) as client:
        item = client.post(f"/api/annotation-queues/{name}/claim", json={"lease_s": lease_s})
    if not item:
        typer.echo("nothing left to label")
        return
    if as_json:
        typer.echo(json.dumps(item, indent=2))
        return
    trace = item.get("trace") or {}
    typer.echo(f"item {item['id']}  claim {item['claim']}  trace {item['trace_id']}")
    typer.echo(f"input:  {json.dumps(trace.get('input'))}")
    typer.echo(f"output: {json.dumps(trace.get('output'))}")


@app.command("label")
def label(
    name: str = typer.Argument(..., help="the queue"),
    item_id: str = typer.Argument(..., help="the item `next` printed"),
    claim: str = typer.Option(..., help="the claim token `next` printed"),
    score: float | None = typer.Option(None, help="your score"),
    category: str | None = typer.Option(None, help="a category of the queue"),
    correction: str | None = typer.Option(None, help="the expected output (text, or JSON)"),
    comment: str | None = typer.Option(None, help="a note"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Label the item you claimed (once)."""
    body = {
        "claim": claim,
        "score": score,
        "category": category,
        "correction": _value(correction) if correction is not None else None,
        "comment": comment,
    }
    with connect(base_url, api_key) as client:
        client.post(f"/api/annotation-queues/{name}/items/{item_id}/label", json=body)
    typer.echo(f"labelled item {item_id}")


@app.command("export")
def export(
    name: str = typer.Argument(..., help="the queue"),
    dataset: str | None = typer.Option(None, help="the dataset (default: the queue's)"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Write the queue's corrections as a new version of a registry dataset."""
    with connect(base_url, api_key) as client:
        version = client.post(f"/api/annotation-queues/{name}/export", json={"dataset": dataset})
    skipped = f" ({len(version['skipped'])} skipped: their traces' bodies are gone)" if version["skipped"] else ""
    typer.echo(f"dataset {version['name']} v{version['version']}: {len(version['items'])} row(s){skipped}")
