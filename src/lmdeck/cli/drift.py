"""``lmdeck drift report``: has a route's traffic drifted? Through the HTTP API.

    lmdeck drift report --route demo --reference 7d --current 1d
    lmdeck drift report --route support --prompt support-reply --prompt-version 3 --json

The gateway computes the report (``GET /api/drift/report``) from at most ``--max-samples`` traces of
each window; the gateway is reached at ``--base-url`` / ``LMDECK_BASE_URL`` with ``--api-key`` /
``LMDECK_API_KEY`` (an admin, or a key of the team owning the route). Exits 0 whatever the verdict;
``--fail-on-drift`` exits 3 on drift, for scripts.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, BASE_URL, connect
from lmdeck.cli.tables import echo_json, table

app = typer.Typer(help="Drift of a route's prompts and answers between two windows.", no_args_is_help=True)

#: Seconds a report may take: embeddings and permutation tests of up to 2 x max_samples traces.
REPORT_TIMEOUT_S = 600.0
DRIFT_EXIT = 3


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch)) + "Z"


def _print(report: dict[str, Any]) -> None:
    ref, cur = report["reference"], report["current"]
    typer.echo(
        f"route {report['route']}: {report['verdict'].replace('_', ' ')} "
        f"(p = {_number(report['p_value'])}, alpha = {report['alpha']})"
    )
    typer.echo(f"reference {_when(ref['since'])} .. {_when(ref['until'])}: {ref['sampled']} of {ref['total']} traces")
    typer.echo(f"current   {_when(cur['since'])} .. {_when(cur['until'])}: {cur['sampled']} of {cur['total']} traces")
    rows: list[tuple[object, ...]] = [("TEST", "SIGNAL", "STATISTIC", "P", "ADJUSTED P", "DRIFT", "N REF/CUR")]
    for test in report["tests"]:
        rows.append(
            (
                test["name"],
                test["signal"],
                f"{test['statistic_name']}={_number(test['statistic'])}" if test["skipped"] is None else "skipped",
                _number(test["p_value"]),
                _number(test["adjusted_p_value"]),
                "yes" if test["drift"] else "no",
                f"{test['n_reference']}/{test['n_current']}",
            )
        )
    typer.echo("\n" + table(rows))
    for test in report["tests"]:
        if test["skipped"]:
            typer.echo(f"  {test['name']}: {test['skipped']}")
    if report["clusters"]:
        typer.echo("\nprompts the current window has more of:")
        for cluster in report["clusters"]:
            typer.echo(
                f"- {cluster['share_current']:.0%} of current vs {cluster['share_reference']:.0%} of reference"
                + (" (new)" if cluster["novel"] else "")
            )
            for example in cluster["examples"]:
                typer.echo(
                    f"    {example['trace_id']}  {example['text'] if example['text'] is not None else '[redacted]'}"
                )
    for note in report["notes"]:
        typer.echo(f"note: {note}", err=True)


@app.command("report")
def report(
    route: str = typer.Option(..., help="the route (public model name)"),
    reference: str = typer.Option("7d", help="length of the reference window, just before the current one"),
    current: str = typer.Option("1d", help="length of the current window, ending now (or at --until)"),
    until: str | None = typer.Option(None, help="end of the current window: epoch seconds or ISO 8601"),
    prompt: str | None = typer.Option(None, help="only requests rendering this prompt"),
    prompt_version: int | None = typer.Option(None, help="only requests rendering this prompt version"),
    max_samples: int = typer.Option(500, help="traces sampled per window (20-2000)"),
    alpha: float = typer.Option(0.01, help="significance level of the verdict (family-wise)"),
    tests: str | None = typer.Option(None, help="comma-separated drift tests (default: the default ones)"),
    seed: int = typer.Option(0, help="seed of permutations and clustering"),
    fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help=f"exit {DRIFT_EXIT} when drift is found"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Compare a route's prompts and answers in the current window with the reference window before it."""
    params: dict[str, Any] = {
        "route": route,
        "reference": reference,
        "current": current,
        "max_samples": max_samples,
        "alpha": alpha,
        "seed": seed,
    }
    for name, value in (("until", until), ("prompt", prompt), ("prompt_version", prompt_version), ("tests", tests)):
        if value is not None:
            params[name] = value
    typer.echo(
        f"computing the drift report of {route!r} ({current} against the {reference} before it, "
        f"at most {max_samples} traces per window)...",
        err=True,
    )
    with connect(base_url, api_key, timeout=REPORT_TIMEOUT_S) as client:
        body: dict[str, Any] = client.get("/api/drift/report", params=params)
    if as_json:
        echo_json(body)
    else:
        _print(body)
    if fail_on_drift and body["verdict"] == "drift":
        raise typer.Exit(DRIFT_EXIT)
