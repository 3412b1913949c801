"""``lmdeck config check``."""

from __future__ import annotations

from pathlib import Path

import typer

from lmdeck.config import ConfigFileError, check_config_text, load_settings
from lmdeck.settings import ConfigError

app = typer.Typer(help="Check and show configuration.", no_args_is_help=True)


@app.command("check")
def check(
    path: Path = typer.Argument(Path("lmdeck.yaml"), help="the config file"),
    pipeline: bool = typer.Option(
        False, "--pipeline", help="also print the request pipeline this config gives: one 'phase step' per line"
    ),
) -> None:
    """Validate a config file, printing each error with its line number."""
    try:
        text = path.read_text()
    except OSError as exc:
        typer.echo(f"{path}: cannot read: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    problems = check_config_text(text)
    if problems:
        for problem in problems:
            typer.echo(f"{path}:{problem.line or '?'}: {problem.location or '-'}: {problem.message}", err=True)
        raise typer.Exit(1)
    if not pipeline:
        typer.echo(f"{path}: ok")
        return
    from lmdeck.app.pipeline_layout import pipeline_layout  # builds a gateway: only when asked

    try:
        layout = pipeline_layout(load_settings(path))
    except (ConfigFileError, ConfigError) as exc:
        typer.echo(f"{path}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{path}: ok; the pipeline, outermost step first:")
    width = max((len(phase) for phase, _ in layout), default=0)
    for phase, step in layout:
        typer.echo(f"{phase:<{width}}  {step}")
