"""``json_output``: the answer must be JSON, and valid against a JSON schema when one is given.

    json-answer:  {type: json_output}
    order-answer: {type: json_output, options: {schema: {type: object, required: [order_id]}}}

Parsing and schema validation are those of the ``json_valid`` and ``json_schema`` evaluators
(a Markdown code fence around the JSON is unwrapped unless ``unwrap: false``). While a stream
is still arriving (``ctx.final`` false) the answer is incomplete JSON, so it passes; the
verdict is given on the whole answer. An answer that is not valid is a ``block`` finding whose
reason names the parse error's position or the failing schema keyword and path, never the
answer's values.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from lmdeck.evaluation.evaluators.json_valid import parse_json
from lmdeck.guardrails.base import (
    PASS,
    CostClass,
    GuardContext,
    GuardrailError,
    GuardResources,
    Stage,
    Verdict,
    run_blocking,
)
from lmdeck.guardrails.registry import GuardrailRegistry


def _validator(schema: Any) -> Any:
    if not isinstance(schema, dict):
        raise GuardrailError("json_output: schema must be a JSON schema object, e.g. {type: object}")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise GuardrailError(f"json_output: the schema is not valid: {exc.message}") from None
    return cls(schema)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Answers longer than this are parsed and validated in a worker thread, off the event loop.
THREAD_ABOVE_CHARS = 16_384


class JsonOutput:
    """Blocks an answer that is not JSON (``object_only``: not a JSON object) or fails ``schema``.

    Raises GuardrailError when ``schema`` is not a valid JSON schema (the message says why).
    """

    name = "json_output"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"output"})

    def __init__(
        self,
        resources: GuardResources | None = None,
        *,
        schema: dict[str, Any] | None = None,
        object_only: bool = False,
        unwrap: bool = True,
    ) -> None:
        self.validator = _validator(schema) if schema is not None else None
        for option, value in (("object_only", object_only), ("unwrap", unwrap)):
            if not isinstance(value, bool):
                raise GuardrailError(f"json_output: {option} must be true or false, got {value!r}")
        self.object_only = object_only
        self.unwrap = unwrap

    def problem(self, text: str) -> str | None:
        """Why ``text`` is not acceptable JSON, or None when it is."""
        value, problem = parse_json(text, unwrap=self.unwrap)
        if problem is not None:
            return problem
        if self.object_only and not isinstance(value, dict):
            return f"JSON {type(value).__name__}, not an object"
        if self.validator is not None:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
            if error is not None:
                where = "/" + "/".join(str(p) for p in error.absolute_path)
                # the schema's keyword and value, not error.message: that quotes the answer's own values
                return f"fails the schema at {where}: {error.validator} {_short(error.validator_value)}"
        return None

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        if not ctx.final:
            return PASS
        if len(text) > THREAD_ABOVE_CHARS:
            problem = await run_blocking(self.problem, text)
        else:
            problem = self.problem(text)
        if problem is None:
            return PASS
        return Verdict("block", score=1.0, reason=f"answer: {problem}")


def register(registry: GuardrailRegistry) -> None:
    registry.add("json_output", JsonOutput)
