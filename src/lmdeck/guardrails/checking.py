"""The guardrail part of ``lmdeck config check``: problems that need the registered guardrails, with lines.

    for problem in check_guardrails_text(Path("lmdeck.yaml").read_text()):
        print(problem)          # line 12: routes.0.guardrails.input.1.use: no guardrail named 'pii2' in ...

Run after the settings themselves are valid (:func:`lmdeck.config.check_config_text`): each
definition is built from the registry (so a bad option is reported as its factory words it)
and every ``use``, restricted name and route is looked up.
"""

from __future__ import annotations

from typing import Any

from lmdeck.config import ConfigProblem, line_of, parse_config_text
from lmdeck.guardrails.base import GuardResources
from lmdeck.guardrails.config import config_problems
from lmdeck.guardrails.registry import GuardrailRegistry, load_guardrails
from lmdeck.guardrails.resources import EMBED_ROUTE
from lmdeck.settings import Settings


async def _not_while_checking(*_args: Any) -> Any:
    raise RuntimeError("models are not called while a configuration is checked")


#: What a guardrail is lent while its options are checked: models it may ask for, never called
#: (``embed`` only when the config serves the ``embed`` route, as the gateway would lend it).
CHECKING = GuardResources(embed=_not_while_checking, complete=_not_while_checking)


def check_guardrails_text(text: str, registry: GuardrailRegistry | None = None) -> list[ConfigProblem]:
    """The guardrail problems of a config text whose settings are valid, each with its line, in line order."""
    data, lines = parse_config_text(text)
    settings = Settings.model_validate(data or {})
    serves_embed = settings.default_routes or any(r.name == EMBED_ROUTE for r in settings.routes)
    lent = CHECKING if serves_embed else GuardResources(complete=CHECKING.complete)
    issues = config_problems(settings, registry or load_guardrails(), lent)
    problems = [ConfigProblem(line_of(lines, i.path), ".".join(str(p) for p in i.path), i.message) for i in issues]
    return sorted(problems, key=lambda p: p.line or 0)
