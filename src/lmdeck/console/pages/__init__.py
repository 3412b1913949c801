"""The built-in console pages, one module each; :data:`BUILTIN` lists them for
:func:`lmdeck.console.install.console_pages`. To add one, see docs/console.md."""

from __future__ import annotations

from lmdeck.console.page import ConsolePage
from lmdeck.console.pages import (
    alerts,
    audit,
    evaluation,
    finetuning,
    keys,
    operations,
    overview,
    playground,
    registry,
    releases,
    routes,
    spend,
    teams,
    traces,
)

BUILTIN: list[ConsolePage] = [
    overview.PAGE,
    traces.PAGE,
    registry.PAGE,
    playground.PAGE,
    evaluation.PAGE,
    finetuning.PAGE,
    releases.PAGE,
    alerts.PAGE,
    routes.PAGE,
    operations.PAGE,
    keys.PAGE,
    spend.PAGE,
    teams.PAGE,
    audit.PAGE,
]
