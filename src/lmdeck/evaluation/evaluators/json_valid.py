"""JSON validity: the output parses as JSON (optionally after unwrapping a code fence)."""

from __future__ import annotations

import json
import re
from typing import Any

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json(text: str, *, unwrap: bool = True) -> tuple[Any, str | None]:
    """The parsed value and None, or None and why it does not parse."""
    candidate = text.strip()
    if unwrap:
        fenced = _FENCE.search(candidate)
        if fenced:
            candidate = fenced.group(1).strip()
    try:
        return json.loads(candidate), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


class JSONValid:
    """1 when the output is valid JSON (``object_only=true``: a JSON object).

    >>> import asyncio
    >>> asyncio.run(JSONValid(EvaluatorContext()).evaluate(Sample('{"a": 1}'))).value
    1.0
    """

    requires_reference = False

    def __init__(self, ctx: EvaluatorContext, unwrap: bool = True, object_only: bool = False) -> None:
        self.name = "json_valid"
        self.unwrap = bool(unwrap)
        self.object_only = bool(object_only)

    async def evaluate(self, sample: Sample) -> Score:
        value, problem = parse_json(sample.output, unwrap=self.unwrap)
        if problem is not None:
            return Score(0.0, label="invalid", explanation=problem)
        if self.object_only and not isinstance(value, dict):
            return Score(0.0, label="invalid", explanation=f"JSON {type(value).__name__}, not an object")
        return Score(1.0, label="valid", explanation="valid JSON")


def register(registry: EvaluatorRegistry) -> None:
    registry.add("json_valid", JSONValid)
