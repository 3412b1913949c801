"""``lmdeck routers train ROUTE``: fit the ``learned`` strategy's router from the store's traces.

    lmdeck routers train smart --feedback thumbs            # traces of `smart` with thumbs feedback
    lmdeck routers train smart-learned --traces-of smart --score json_valid --json

It reads the gateway's store directly (``--config`` / ``--data-dir``, as ``lmdeck serve`` was
started), embeds the requests with the bundled MiniLM on this machine, prints the held-out
accuracy and expected cost saving, and writes the router where the gateway loads it (the route's
``learned.model_path``, else ``<data_dir>/routers/<route>.json``); a running gateway picks it up
within a second. See docs/routing.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from lmdeck.cli.traces import CONFIG, DATA_DIR, _open_store
from lmdeck.evaluation.router_training import EmbedTexts

app = typer.Typer(help="Train the routers of `learned` routes.", no_args_is_help=True)


@app.command("train")
def train(
    route: str = typer.Argument(..., help="the route whose router to train (its targets, cheapest first)"),
    traces_of: str | None = typer.Option(None, "--traces-of", help="learn from this route's traces (same targets)"),
    feedback: str | None = typer.Option(None, "--feedback", help="the feedback name whose values say good or bad"),
    score: str | None = typer.Option(None, "--score", help="the online evaluator whose scores say good or bad"),
    pass_at: float = typer.Option(0.5, "--pass-at", help="a feedback value or score at least this is good"),
    test_share: float = typer.Option(0.2, "--test-share", min=0.05, max=0.5, help="share held out to measure"),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    config: Path | None = CONFIG,
    data_dir: Path | None = DATA_DIR,
) -> None:
    """Train ROUTE's router; exit 1 naming what is missing when the traces cannot train one."""
    from lmdeck.evaluation.router_training import TrainingError, collect, fit
    from lmdeck.gateway.routing.learned import router_path

    settings, db = _open_store(config, data_dir)
    found = {r.name: r for r in settings.routes}.get(route)
    if found is None or len(found.targets) < 2:
        typer.echo(f"error: no route {route!r} with two or more targets in the config: add it first", err=True)
        raise typer.Exit(1)
    targets = [t.id for t in found.targets]
    threshold = found.learned.threshold if found.learned is not None else 0.5
    try:
        examples, skipped = collect(
            db, traces_of or route, targets, feedback=feedback, evaluator=score, pass_at=pass_at
        )
        router, report = fit(
            route,
            targets,
            examples,
            _embedder(),
            threshold=threshold,
            test_share=test_share,
            seed=seed,
            skipped=skipped,
        )
    except TrainingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    path = router_path(settings.data_dir, route, found.learned)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_bytes(router.to_json())
    os.replace(partial, path)  # the gateway never reads a half-written router
    if as_json:
        typer.echo(json.dumps({"path": str(path), **report.to_dict()}, indent=2))
        return
    saving = "unknown" if report.expected_cost_saving is None else f"{report.expected_cost_saving:.1%}"
    typer.echo(f"trained {route!r} on {report.train} traces, measured on {report.test} held out")
    typer.echo(f"  accuracy {report.accuracy:.1%} (always the commonest tier: {report.baseline_accuracy:.1%})")
    typer.echo(f"  routed per tier {report.routed_share}; under-routed {report.under_routed_share:.1%}")
    typer.echo(f"  expected cost saving against always the last target: {saving}")
    typer.echo(f"  skipped traces: {report.skipped or 'none'}")
    typer.echo(f"wrote {path}")


def _embedder() -> EmbedTexts:
    import torch

    from lmdeck.local.embeddings import SentenceEmbedder, minilm_dir

    embedder = SentenceEmbedder.load(minilm_dir(), device=torch.device("cpu"))

    def embed(texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), 64):
            vectors, _ = embedder.encode(texts[start : start + 64])
            out.extend(vectors.tolist())
        return out

    return embed
