"""``lmdeck``: the entry point that assembles the command groups."""

from __future__ import annotations

import typer

import lmdeck
from lmdeck.cli import alerts as alerts_cmd
from lmdeck.cli import apply as apply_cmd
from lmdeck.cli import audit as audit_cmd
from lmdeck.cli import batches as batches_cmd
from lmdeck.cli import budgets as budgets_cmd
from lmdeck.cli import config_cmd, serve, traces
from lmdeck.cli import datasets as datasets_cmd
from lmdeck.cli import drift as drift_cmd
from lmdeck.cli import eval as eval_cmd
from lmdeck.cli import files as files_cmd
from lmdeck.cli import fine_tuning as fine_tuning_cmd
from lmdeck.cli import flags as flags_cmd
from lmdeck.cli import flywheel as flywheel_cmd
from lmdeck.cli import guardrails as guardrails_cmd
from lmdeck.cli import keys as keys_cmd
from lmdeck.cli import models as models_cmd
from lmdeck.cli import prompts as prompts_cmd
from lmdeck.cli import queues as queues_cmd
from lmdeck.cli import releases as releases_cmd
from lmdeck.cli import retention as retention_cmd
from lmdeck.cli import routers as routers_cmd
from lmdeck.cli import sessions as sessions_cmd
from lmdeck.cli import spend as spend_cmd
from lmdeck.cli import teams as teams_cmd

app = typer.Typer(help="lmdeck: the operations deck for LLM applications.", no_args_is_help=True)
app.command("serve")(serve.serve)
app.add_typer(config_cmd.app, name="config")
app.add_typer(traces.app, name="traces")
app.add_typer(sessions_cmd.app, name="sessions")
app.add_typer(models_cmd.app, name="models")
app.add_typer(prompts_cmd.app, name="prompts")
app.add_typer(datasets_cmd.app, name="datasets")
app.add_typer(eval_cmd.app, name="eval")
app.command("apply")(apply_cmd.apply)
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(teams_cmd.app, name="teams")
app.add_typer(budgets_cmd.app, name="budgets")
app.add_typer(spend_cmd.app, name="spend")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(flags_cmd.app, name="flags")
app.add_typer(guardrails_cmd.app, name="guardrails")
app.add_typer(routers_cmd.app, name="routers")
app.add_typer(releases_cmd.app, name="releases")
app.add_typer(flywheel_cmd.app, name="flywheel")
app.add_typer(retention_cmd.app, name="retention")
app.add_typer(alerts_cmd.app, name="alerts")
app.add_typer(queues_cmd.app, name="queues")
app.add_typer(drift_cmd.app, name="drift")
app.add_typer(files_cmd.app, name="files")
app.add_typer(batches_cmd.app, name="batches")
app.add_typer(fine_tuning_cmd.app, name="fine-tuning")


@app.command()
def version() -> None:
    """Print lmdeck's version."""
    typer.echo(lmdeck.__version__)


def main() -> None:
    app()
