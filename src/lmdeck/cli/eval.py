"""``lmdeck eval``: eval runs, comparisons and CI gates, experiments and online rules.

    lmdeck eval run --dataset arith@1 --prompt calc@2 --route demo --evaluators exact,numeric
    lmdeck eval run --dataset arith@1 --route demo -e 'close=numeric:abs_tol=0.5' --gate 'close>=0.9'
    lmdeck eval compare run_a run_b --gate 'delta(exact)>=-0.01'
    lmdeck eval gate run_b 'exact>=0.9, delta(exact)>=-0.01 vs run_a'
    lmdeck eval experiments show reply-v3

A failed gate exits with status 1 (for CI); an error (bad input, no gateway) with 2.
The gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import table
from lmdeck.sdk import Client
from lmdeck.sdk.evaluation import Evaluation
from lmdeck.sdk.experiments import Experiments

app = typer.Typer(help="Evaluate prompts and models: runs, comparisons, gates, experiments.", no_args_is_help=True)
experiments_app = typer.Typer(help="A/B experiments in the gateway.", no_args_is_help=True)
online_app = typer.Typer(help="Online evaluation rules and scores.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(online_app, name="online")


@contextmanager
def _client(base_url: str | None, api_key: str | None) -> Iterator[Client]:
    """Runs wait on the server longer than other calls; a failed call exits with status 2."""
    with connect(base_url, api_key, timeout=60.0, exit_code=2) as client:
        yield client


def _evaluation(client: Client) -> Evaluation:
    return client.namespace("evaluation")  # type: ignore[return-value]


def _experiments(client: Client) -> Experiments:
    return client.namespace("experiments")  # type: ignore[return-value]


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def summary_text(run: dict[str, Any]) -> str:
    summary = run.get("summary") or {}
    lines = [
        f"run {run['id']}  {run['status']}  dataset {run['dataset']}  "
        f"{'prompt ' + run['prompt'] if run.get('prompt') else ''}{'  route ' + run['route'] if run.get('route') else ''}"
        f"{'  model ' + run['model'] if run.get('model') else ''}".rstrip()
    ]
    if run.get("error"):
        lines.append(f"error: {run['error']}")
    scores = summary.get("scores") or {}
    if scores:
        rows = [["EVALUATOR", "MEAN", "95% CI", "N", "UNSCORED"]]
        for key, s in scores.items():
            rows.append([key, _num(s["mean"]), _interval(s.get("low"), s.get("high")), str(s["n"]), str(s["unscored"])])
        lines.append(table(rows))
        latency = summary.get("latency_ms") or {}
        tokens = summary.get("tokens") or {}
        lines.append(
            f"rows {summary.get('rows')}  errors {summary.get('errors')}  latency p50 {_num(latency.get('p50'), 1)}ms "
            f"p95 {_num(latency.get('p95'), 1)}ms  tokens {tokens.get('input', 0)}/{tokens.get('output', 0)}  "
            f"cost ${summary.get('cost', 0.0):.6f}"
        )
    return "\n".join(lines)


def comparison_text(cmp: dict[str, Any], changed: int) -> str:
    rows = [["EVALUATOR", "A", "B", "DELTA", "95% CI", "P-VALUE", "TEST"]]
    for key, d in cmp["evaluators"].items():
        rows.append(
            [
                key,
                _num(d["mean_a"]),
                _num(d["mean_b"]),
                f"{d['delta']:+.3f}",
                _interval(d.get("low"), d.get("high"), signed=True),
                _p(d["p_value"]),
                d["method"],
            ]
        )
    lines = [f"{cmp['run_a']} (A) vs {cmp['run_b']} (B), {cmp['rows']} paired rows", table(rows)]
    lines.append(f"{cmp['changed_total']} rows changed")
    for row in cmp["changed"][:changed]:
        a = ", ".join(f"{k}={_num(v, 2)}" for k, v in row["scores_a"].items())
        b = ", ".join(f"{k}={_num(v, 2)}" for k, v in row["scores_b"].items())
        lines.append(
            f"  #{row['idx']} expected {row['expected']!r}: A {row['output_a']!r} ({a}) -> B {row['output_b']!r} ({b})"
        )
    return "\n".join(lines)


def _interval(low: float | None, high: float | None, *, signed: bool = False) -> str:
    """``[low, high]``, or "undefined" when the data cannot give an interval."""
    if low is None or high is None:
        return "undefined"
    return f"[{low:+.3f}, {high:+.3f}]" if signed else f"[{_num(low)}, {_num(high)}]"


def gate_text(result: dict[str, Any]) -> str:
    """Per clause: verdict, reason, semantics, the estimate with its interval, and any warning."""
    lines = [f"gate on {result['run_id']}: {'passed' if result['passed'] else 'FAILED'}"]
    for clause in result["clauses"]:
        verdict = "ERR " if clause.get("error") else "ok  " if clause["passed"] else "FAIL"
        lines.append(f"  {verdict} {clause['clause']}: {clause['reason']}")
        if clause.get("error") or "semantics" not in clause:
            continue
        estimate = clause.get("estimate")
        detail = f"       {clause['semantics']}; estimate {_num(estimate, 4) if estimate is not None else 'n/a'}"
        if clause.get("low") is not None or clause.get("high") is not None:
            detail += f", 95% interval {_interval(clause.get('low'), clause.get('high'))}"
        if clause.get("rows") is not None:
            detail += f", {clause['rows']} rows"
        if clause.get("method"):
            detail += f" ({clause['method']})"
        lines.append(detail)
        if clause.get("warning"):
            lines.append(f"       warning: {clause['warning']}")
    return "\n".join(lines)


def _finish_gate(result: dict[str, Any], as_json: bool) -> None:
    """Print a gate's result and exit: 0 passed, 1 failed (a regression), 2 the gate itself is broken."""
    typer.echo(json.dumps(result, indent=2) if as_json else gate_text(result))
    if result.get("configuration_error"):
        raise typer.Exit(2)
    if not result["passed"]:
        raise typer.Exit(1)


@app.command("run")
def run(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset version: name@version (or name for the newest)"),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="prompt version: name@version or name@label"),
    route: str | None = typer.Option(None, "--route", "-r", help="route to call (optional with a prompt bound to one)"),
    model: str | None = typer.Option(
        None, "--model", "-m", help="registry model version served on the route: name@version"
    ),
    evaluators: list[str] = typer.Option([], "--evaluators", help="comma-separated evaluator names"),
    evaluator: list[str] = typer.Option([], "--evaluator", "-e", help="one evaluator: [key=]name[:k=v&k=v | :{json}]"),
    name: str | None = typer.Option(None, "--name", help="a name for the run"),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, max=64),
    max_rows: int | None = typer.Option(None, "--max-rows", min=1),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1),
    gate: str | None = typer.Option(None, "--gate", help="e.g. 'exact>=0.9, delta(exact)>=-0.01 vs RUN'"),
    baseline: str | None = typer.Option(None, "--baseline", help="run that delta()/p() clauses compare with"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="follow the run to its end"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Run a dataset through a prompt or route and score every row."""
    specs: list[str | dict[str, Any]] = [*evaluators, *evaluator]
    if not specs:
        typer.echo("error: name at least one evaluator: --evaluators exact,numeric or -e 'regex:pattern=...'", err=True)
        raise typer.Exit(2)
    with _client(base_url, api_key) as client:
        evaluation = _evaluation(client)
        started = evaluation.start_run(
            dataset=dataset,
            prompt=prompt,
            route=route,
            model=model,
            evaluators=specs,
            name=name,
            concurrency=concurrency,
            max_rows=max_rows,
            max_tokens=max_tokens,
        )
        if not wait:
            typer.echo(json.dumps(started, indent=2) if as_json else started["id"])
            return
        progress_bar = typer.progressbar(
            length=max(1, started["row_count"]), label=f"run {started['id']}", file=sys.stderr
        )
        with progress_bar as bar:
            shown = 0

            def progress(done: int, total: int) -> None:
                nonlocal shown
                bar.update(done - shown)
                shown = done

            finished = evaluation.wait(started["id"], on_progress=progress, poll=0.3)
        typer.echo(json.dumps(finished, indent=2) if as_json else summary_text(finished))
        if finished["status"] != "succeeded":
            raise typer.Exit(2)
        if gate:
            _finish_gate(evaluation.gate(finished["id"], gate, baseline=baseline), as_json)


@app.command("list")
def list_runs(
    limit: int = typer.Option(20, "--limit", min=1, max=500),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Eval runs, newest first."""
    with _client(base_url, api_key) as client:
        runs = _evaluation(client).runs(limit=limit)
    if as_json:
        typer.echo(json.dumps(runs, indent=2))
        return
    rows = [["ID", "STATUS", "DATASET", "PROMPT", "ROUTE", "ROWS", "SCORES"]]
    for r in runs:
        scores = ((r.get("summary") or {}).get("scores")) or {}
        text = " ".join(f"{k}={_num(v['mean'])}" for k, v in scores.items())
        rows.append(
            [
                r["id"],
                r["status"],
                r["dataset"],
                r.get("prompt") or "-",
                r.get("route") or "-",
                f"{r['completed']}/{r['row_count']}",
                text,
            ]
        )
    typer.echo(table(rows))


@app.command("show")
def show(
    run_id: str = typer.Argument(..., help="the run id"),
    rows: bool = typer.Option(False, "--rows", help="also print every row"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """One run's summary (and rows)."""
    with _client(base_url, api_key) as client:
        evaluation = _evaluation(client)
        found = evaluation.run(run_id)
        results = evaluation.results(run_id) if rows else []
    if as_json:
        typer.echo(json.dumps({**found, "results": results} if rows else found, indent=2))
        return
    typer.echo(summary_text(found))
    for r in results:
        scores = ", ".join(f"{k}={_num(v.get('value'), 2)}" for k, v in r["scores"].items())
        typer.echo(
            f"  #{r['idx']} {r['output']!r} expected {r['expected']!r}: {scores}{'  ' + r['error'] if r['error'] else ''}"
        )


@app.command("compare")
def compare(
    run_a: str = typer.Argument(..., help="baseline run"),
    run_b: str = typer.Argument(..., help="candidate run"),
    gate: str | None = typer.Option(None, "--gate", help="checked on B with A as the baseline"),
    changed: int = typer.Option(10, "--changed", min=0, help="changed rows to print"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Per-evaluator deltas of B against A, with paired significance tests and the rows that changed."""
    with _client(base_url, api_key) as client:
        evaluation = _evaluation(client)
        result = evaluation.compare(run_a, run_b, max_changed=max(changed, 0))
        typer.echo(json.dumps(result, indent=2) if as_json else comparison_text(result, changed))
        if gate:
            _finish_gate(evaluation.gate(run_b, gate, baseline=run_a), as_json)


@app.command("gate")
def gate_cmd(
    run_id: str = typer.Argument(..., help="the run to gate"),
    gate: str = typer.Argument(..., help="e.g. 'exact>=0.9, delta(exact)>=-0.01 vs RUN'"),
    baseline: str | None = typer.Option(None, "--baseline", help="run that delta()/p() clauses compare with"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Check a quality gate on a finished run; exit 1 when it fails, 2 when it cannot be evaluated."""
    with _client(base_url, api_key) as client:
        result = _evaluation(client).gate(run_id, gate, baseline=baseline)
    _finish_gate(result, as_json)


@app.command("evaluators")
def evaluators(base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """The evaluators the gateway knows, with their options."""
    with _client(base_url, api_key) as client:
        found = _evaluation(client).evaluators()
    rows = [["NAME", "OPTIONS", "DESCRIPTION"]]
    for e in found:
        rows.append([e["name"], ", ".join(e["options"]) or "-", e["description"]])
    typer.echo(table(rows))


@experiments_app.command("list")
def experiments_list(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Experiments, newest first."""
    with _client(base_url, api_key) as client:
        found = _experiments(client).list()
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    rows = [["NAME", "STATUS", "ON", "METRIC", "VARIANTS"]]
    for e in found:
        on = f"route {e['route']}" if e.get("route") else f"prompt {e['prompt']}"
        variants = ", ".join(f"{v['name']}:{v['weight']:g}" for v in e["variants"])
        rows.append([e["name"], e["status"], on, e["metric"], variants])
    typer.echo(table(rows))


@experiments_app.command("show")
def experiments_show(
    name: str, as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY
) -> None:
    """Per-variant statistics and the verdict."""
    with _client(base_url, api_key) as client:
        found = _experiments(client).get(name)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    typer.echo(f"experiment {found['name']} ({found['status']}), metric {found['metric']}")
    rows = [
        ["VARIANT", "WEIGHT", "REQUESTS", "ERROR RATE", "LATENCY MS", "COST", "METRIC N", "METRIC MEAN", "P VS CONTROL"]
    ]
    for v in found["variants"]:
        test = v.get("versus_control")
        rows.append(
            [
                v["name"],
                f"{v['weight']:g}",
                str(v["requests"]),
                _num(v["error_rate"]),
                _num(v["latency_ms_mean"], 1),
                _num(v["cost_mean"], 6),
                str(v["metric"]["n"]),
                _num(v["metric"]["mean"]),
                _p(test["p_value"]) if test else "-",
            ]
        )
    typer.echo(table(rows))
    verdict = found["verdict"]
    typer.echo(f"verdict: {verdict['status']}" + (f", winner {verdict['winner']}" if verdict["winner"] else ""))
    if verdict.get("method"):
        shown = ", ".join(f"{k}={v}" for k, v in (verdict.get("parameters") or {}).items())
        typer.echo(f"method: {verdict['method']} ({shown})")
    for line in verdict["evidence"]:
        typer.echo(f"  {line}")


@experiments_app.command("start")
def experiments_start(
    spec: str = typer.Argument(..., help="the experiment as JSON, or @file.json"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Start an experiment from its JSON definition."""
    text = open(spec[1:]).read() if spec.startswith("@") else spec  # noqa: SIM115
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        typer.echo(f"error: the experiment is not valid JSON: {exc}", err=True)
        raise typer.Exit(2) from None
    with _client(base_url, api_key) as client:
        created = _experiments(client).create(body)
    typer.echo(f"experiment {created['name']} running")


@experiments_app.command("stop")
def experiments_stop(name: str, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Stop an experiment."""
    with _client(base_url, api_key) as client:
        _experiments(client).stop(name)
    typer.echo(f"experiment {name} stopped")


@experiments_app.command("promote")
def experiments_promote(
    name: str,
    variant: str | None = typer.Option(None, "--variant", help="default: the verdict's winner"),
    reason: str | None = typer.Option(None, "--reason"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Move the registry label/alias to a variant and stop the experiment."""
    with _client(base_url, api_key) as client:
        done = _experiments(client).promote(name, variant, reason=reason)
    outcome = done.get("outcome") or {}
    typer.echo(
        f"experiment {name}: promoted {outcome.get('promoted')}, {len(outcome.get('moves', []))} registry move(s)"
    )


@online_app.command("rules")
def online_rules(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Online evaluation rules in force."""
    with _client(base_url, api_key) as client:
        rules = _evaluation(client).online_rules()
    if as_json:
        typer.echo(json.dumps(rules, indent=2))
        return
    rows = [["NAME", "RATE", "FILTER", "EVALUATORS"]]
    for r in rules:
        filt = " ".join(f"{k}={v}" for k, v in r["filter"].items() if v is not None)
        names = ", ".join(e["alias"] or e["name"] if isinstance(e, dict) else str(e) for e in r["evaluators"])
        rows.append([r["name"], f"{r['sample_rate']:.0%}", filt, names])
    typer.echo(table(rows))


@online_app.command("set")
def online_set(
    name: str,
    sample_rate: str = typer.Option(..., "--rate", help="share of matching traces, e.g. 10% or 0.1"),
    evaluator: list[str] = typer.Option(..., "--evaluator", "-e"),
    route: str | None = typer.Option(None, "--route"),
    prompt: str | None = typer.Option(None, "--prompt"),
    tag: str | None = typer.Option(None, "--tag"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create or replace an online rule."""
    filt = {k: v for k, v in {"route": route, "prompt": prompt, "tag": tag}.items() if v is not None}
    with _client(base_url, api_key) as client:
        _evaluation(client).set_online_rule(name, evaluators=list(evaluator), sample_rate=sample_rate, filter=filt)
    typer.echo(f"online rule {name} saved")


@online_app.command("summary")
def online_summary(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Mean online score per route, prompt version, model and evaluator."""
    with _client(base_url, api_key) as client:
        found = _evaluation(client).online_summary()
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    rows = [["ROUTE", "PROMPT", "VERSION", "MODEL", "EVALUATOR", "N", "MEAN"]]
    for s in found:
        rows.append(
            [
                s["route"] or "-",
                s["prompt"] or "-",
                str(s["prompt_version"] or "-"),
                s["model"] or "-",
                s["evaluator"],
                str(s["count"]),
                _num(s["mean"]),
            ]
        )
    typer.echo(table(rows))
