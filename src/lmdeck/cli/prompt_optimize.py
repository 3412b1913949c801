"""``lmdeck prompts optimize`` and ``lmdeck prompts optimizations``: prompt optimization from the shell.

lmdeck prompts optimize adder@production --dataset sums@1 --evaluator exact --candidates 6 --demos 3 --follow
lmdeck prompts optimize adder@2 -d sums@1 -e numeric --demos 0 --instruction "Answer with the number only."
lmdeck prompts optimizations adder                  # the prompt's optimizations, newest first
lmdeck prompts optimizations adder opt_0192…        # one: its candidates, scores and the version registered
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import echo_json, table, when
from lmdeck.protocol.limits import is_ascii_int


def _split(ref: str) -> tuple[str, dict[str, Any]]:
    name, _, pointer = ref.partition("@")
    if not pointer:
        return name, {}
    return name, {"version": int(pointer)} if is_ascii_int(pointer) else {"label": pointer}


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def result_text(record: dict[str, Any]) -> str:
    """A finished optimization in a few lines: each candidate's scores, the paired test, what was registered."""
    lines = [f"optimization {record['id']} of {record['prompt']} v{record['from_version']}: {record['status']}"]
    if record.get("error"):
        lines.append(f"error: {record['error']}")
    result = record.get("result")
    if not result:
        return "\n".join(lines)
    rows: list[Sequence[object]] = [("CANDIDATE", "MEAN", "SCORES", "INSTRUCTION", "DEMOS", "RUN")]
    for c in [result["baseline"], *result["candidates"]]:
        instruction = (c.get("instruction") or {}).get("source", "original")
        demos = ",".join(str(d["row"]) for d in c.get("demos", [])) or "-"
        scores = " ".join(f"{k}={_num(v)}" for k, v in c["scores"].items())
        rows.append((c["candidate"], _num(c["mean"]), scores, instruction, demos, c["run"]))
    lines.append(table(rows))
    lines.append(f"held-out rows scored: {result['heldout_rows']}; training rows: {result['training_rows']}")
    for key, delta in result["comparison"]["evaluators"].items():
        lines.append(
            f"{key}: {_num(delta['mean_a'])} -> {_num(delta['mean_b'])} "
            f"(paired {delta.get('method', '-')}, p={_num(delta.get('p_value'))})"
        )
    registered = result.get("registered")
    if registered:
        lines.append(f"registered {record['prompt']} v{registered['version']} ({result['winner']}); no label moved")
    else:
        lines.append("no candidate beat the original: nothing registered")
    return "\n".join(lines)


def optimize(
    prompt: str = typer.Argument(..., help="NAME@LABEL or NAME@VERSION to start from (NAME: the production label)"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset version: name@version"),
    evaluator: list[str] = typer.Option([], "--evaluator", "-e", help="an evaluator: [key=]name[:k=v&k=v]"),
    route: str | None = typer.Option(None, "--route", "-r", help="the model to optimize for (default: the prompt's)"),
    instruction: list[str] = typer.Option([], "--instruction", "-i", help="an instruction to try (repeatable)"),
    candidates: int = typer.Option(6, "--candidates", "-n", min=1, max=64, help="candidates besides the original"),
    demos: int = typer.Option(3, "--demos", "-k", min=0, max=16, help="demonstrations per candidate"),
    seed: int = typer.Option(0, "--seed", min=0),
    holdout: float = typer.Option(0.5, "--holdout", help="share of the rows held out for scoring"),
    max_eval_rows: int = typer.Option(100, "--max-eval-rows", min=1, max=10_000),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, max=64),
    follow: bool = typer.Option(False, "--follow", "-f", help="show progress until it finishes"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Search instruction variants and few-shot demonstrations; register the best if it beats the original."""
    if not evaluator:
        typer.echo("error: name at least one evaluator: -e exact (see `lmdeck eval evaluators`)", err=True)
        raise typer.Exit(2)
    name, pointer = _split(prompt)
    with connect(base_url, api_key) as client:
        prompts = client.prompts
        started = prompts.optimize(
            name,
            dataset=dataset,
            evaluators=list(evaluator),
            route=route,
            instructions=list(instruction) or None,
            candidates=candidates,
            demos=demos,
            seed=seed,
            holdout=holdout,
            max_eval_rows=max_eval_rows,
            max_tokens=max_tokens,
            concurrency=concurrency,
            **pointer,
        )
        if not follow:
            if as_json:
                echo_json(started)
            else:
                typer.echo(f"{started['id']} started ({started['progress']['total']} eval runs)")
            return
        with typer.progressbar(
            length=max(1, started["progress"]["total"]), label=f"optimization {started['id']}", file=sys.stderr
        ) as bar:
            shown = 0

            def progress(state: dict[str, Any]) -> None:
                nonlocal shown
                bar.update(int(state["done"]) - shown)
                shown = int(state["done"])
                best = state.get("best")
                if best:
                    bar.label = f"optimization {started['id']} (best: {best['candidate']} {_num(best['mean'])})"

            record = prompts.wait_optimization(name, started["id"], on_progress=progress, poll=0.5)
    if as_json:
        echo_json(record)
    else:
        typer.echo(result_text(record))
    if record["status"] != "succeeded":
        raise typer.Exit(2)


def optimizations(
    name: str,
    optimization_id: str | None = typer.Argument(None, help="show this one in full"),
    limit: int = typer.Option(20, "--limit", min=1, max=500),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """A prompt's optimizations, newest first, or one of them."""
    with connect(base_url, api_key) as client:
        if optimization_id is not None:
            record = client.prompts.optimization(name, optimization_id)
            echo_json(record) if as_json else typer.echo(result_text(record))
            return
        records = client.prompts.optimizations(name, limit=limit)
    if as_json:
        echo_json(records)
        return
    rows: list[Sequence[object]] = [("ID", "STATUS", "FROM", "DATASET", "PROGRESS", "BEST", "REGISTERED", "CREATED")]
    for r in records:
        best = r["progress"].get("best") or {}
        registered = ((r.get("result") or {}).get("registered") or {}).get("version")
        rows.append(
            (
                r["id"],
                r["status"],
                f"v{r['from_version']}",
                r["dataset"],
                f"{r['progress']['done']}/{r['progress']['total']}",
                f"{best.get('candidate', '-')} {_num(best.get('mean'))}" if best else "-",
                f"v{registered}" if registered else "-",
                when(r["created_at"]),
            )
        )
    typer.echo(table(rows))


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
    app.command("optimizations")(optimizations)
