"""How an evaluator is asked for: a registry name, its options and the key its scores go under.

On the command line an evaluator is ``[key=]name[:options]``, where options are a JSON
object or ``k=v`` pairs joined by ``&``; values are read as JSON when they parse::

    >>> EvaluatorSpec.parse("numeric:abs_tol=0.5").options
    {'abs_tol': 0.5}
    >>> EvaluatorSpec.parse("strict=regex:pattern=^[0-9]+$").key
    'strict'
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.evaluation.base import EvaluatorError

_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class EvaluatorSpec(BaseModel):
    """One evaluator to run: ``name`` in the registry, its ``options``, and an optional ``alias``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=_NAME.pattern)
    options: dict[str, Any] = Field(default_factory=dict)
    alias: str | None = Field(default=None, pattern=_NAME.pattern)

    @property
    def key(self) -> str:
        """The name its scores are stored and gated under."""
        return self.alias or self.name

    @classmethod
    def parse(cls, text: str) -> EvaluatorSpec:
        text = text.strip()
        alias = None
        head, eq, rest = text.partition("=")
        if eq and ":" not in head and _NAME.match(head):
            alias, text = head, rest
        name, _, raw = text.partition(":")
        if not _NAME.match(name):
            raise EvaluatorError(f"{text!r} is not an evaluator: write name, name:k=v&k=v or name:{{json}}")
        options: dict[str, Any] = {}
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                loaded = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise EvaluatorError(f"options of evaluator {name!r} are not valid JSON: {exc}") from None
            if not isinstance(loaded, dict):
                raise EvaluatorError(f"options of evaluator {name!r} must be a JSON object")
            options = loaded
        elif raw:
            for pair in raw.split("&"):
                key, eq, value = pair.partition("=")
                if not eq or not _NAME.match(key.strip()):
                    raise EvaluatorError(f"option {pair!r} of evaluator {name!r} must look like key=value")
                options[key.strip()] = _value(value)
        return cls(name=name, options=options, alias=alias)

    @classmethod
    def parse_many(cls, texts: list[str]) -> list[EvaluatorSpec]:
        """Specs from ``--evaluators a,b`` lists (plain names split on commas) and ``-e spec`` items."""
        specs: list[EvaluatorSpec] = []
        for text in texts:
            parts = [text] if ":" in text else [p for p in text.split(",") if p.strip()]
            specs.extend(cls.parse(p) for p in parts)
        return specs

    def __str__(self) -> str:
        prefix = f"{self.alias}=" if self.alias else ""
        suffix = f":{json.dumps(self.options, sort_keys=True)}" if self.options else ""
        return f"{prefix}{self.name}{suffix}"
