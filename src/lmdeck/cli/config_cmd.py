"""``lmdeck config check``."""

from __future__ import annotations

from pathlib import Path

import typer

from lmdeck.config import ConfigFileError, check_config_text, config_path, load_settings
from lmdeck.settings import ConfigError, Settings

app = typer.Typer(help="Check and show configuration.", no_args_is_help=True)


@app.command("check")
def check(
    path: Path | None = typer.Argument(
        None, help="the config file (default: $LMDECK_CONFIG, else ./lmdeck.yaml, as `lmdeck serve` finds it)"
    ),
    pipeline: bool = typer.Option(
        False, "--pipeline", help="also print the request pipeline this config gives: one 'phase step' per line"
    ),
) -> None:
    """Validate a config file, printing each error with its line number.

    With no file to check (no path, ``LMDECK_CONFIG`` unset, no ``./lmdeck.yaml``) it says so and checks
    the defaults, which is what ``lmdeck serve`` would then run on.
    """
    file = config_path(path)
    defaults: Settings | None = None
    if file is None:
        name = "(defaults)"
        typer.echo(
            "no config file (no path given, LMDECK_CONFIG unset, no ./lmdeck.yaml): checking the defaults,"
            " which `lmdeck serve` would run on",
            err=True,
        )
        try:
            defaults = load_settings(None)  # the LMDECK_* variables are all there is to check
        except ConfigFileError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    else:
        name = str(file)
        try:
            text = file.read_text()
        except OSError as exc:
            typer.echo(f"{file}: cannot read: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        problems = check_config_text(text)
        if not problems:
            from lmdeck.guardrails.checking import check_guardrails_text  # loads the guardrail plugins

            problems = check_guardrails_text(text)
        if problems:
            for problem in problems:
                typer.echo(f"{file}:{problem.line or '?'}: {problem.location or '-'}: {problem.message}", err=True)
            raise typer.Exit(1)
    if not pipeline:
        typer.echo(f"{name}: ok")
        return
    from lmdeck.app.pipeline_layout import pipeline_layout  # builds a gateway: only when asked

    try:
        layout = pipeline_layout(defaults or load_settings(file))
    except ConfigFileError as exc:  # names the file (or the environment) itself
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except ConfigError as exc:
        typer.echo(f"{name}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name}: ok; the pipeline, outermost step first:")
    width = max((len(phase) for phase, _ in layout), default=0)
    for phase, step in layout:
        typer.echo(f"{phase:<{width}}  {step}")
