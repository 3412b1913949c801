"""``lmdeck config check``."""

from __future__ import annotations

from pathlib import Path

import typer

from lmdeck.config import check_config_text

app = typer.Typer(help="Check and show configuration.", no_args_is_help=True)


@app.command("check")
def check(path: Path = typer.Argument(Path("lmdeck.yaml"), help="the config file")) -> None:
    """Validate a config file, printing each error with its line number."""
    try:
        text = path.read_text()
    except OSError as exc:
        typer.echo(f"{path}: cannot read: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    problems = check_config_text(text)
    if not problems:
        typer.echo(f"{path}: ok")
        return
    for problem in problems:
        typer.echo(f"{path}:{problem.line or '?'}: {problem.location or '-'}: {problem.message}", err=True)
    raise typer.Exit(1)
