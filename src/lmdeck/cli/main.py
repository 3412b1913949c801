"""``lmdeck``: the entry point that assembles the command groups."""

from __future__ import annotations

import typer

import lmdeck
from lmdeck.cli import config_cmd, serve, traces

app = typer.Typer(help="lmdeck: the operations deck for LLM applications.", no_args_is_help=True)
app.command("serve")(serve.serve)
app.add_typer(config_cmd.app, name="config")
app.add_typer(traces.app, name="traces")


@app.command()
def version() -> None:
    """Print lmdeck's version."""
    typer.echo(lmdeck.__version__)


def main() -> None:
    app()
