"""JSON schema: the output is JSON that validates against a schema (option, or the row's metadata)."""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.evaluators.json_valid import parse_json
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.protocol.evaluation import EvaluatorError


def _validator(schema: Any) -> jsonschema.protocols.Validator:
    if not isinstance(schema, dict):
        raise EvaluatorError("json_schema: the schema must be a JSON object")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise EvaluatorError(f"json_schema: the schema is not valid: {exc.message}") from None
    return cls(schema)


class JSONSchema:
    """1 when the output is JSON valid against ``schema`` (or ``metadata['schema']`` of the row).

    >>> import asyncio
    >>> ev = JSONSchema(EvaluatorContext(), schema={"type": "object", "required": ["name"]})
    >>> asyncio.run(ev.evaluate(Sample('{"age": 3}'))).explanation
    "'name' is a required property"
    """

    def __init__(self, ctx: EvaluatorContext, schema: dict[str, Any] | None = None, unwrap: bool = True) -> None:
        self.name = "json_schema"
        self.validator = _validator(schema) if schema is not None else None
        self.requires_reference = schema is None
        self.unwrap = bool(unwrap)

    async def evaluate(self, sample: Sample) -> Score:
        validator = self.validator
        if validator is None:
            schema = sample.metadata.get("schema")
            if schema is None:
                return Score(
                    0.0, label="no_reference", explanation="no schema: set schema= or the row's metadata.schema"
                )
            validator = _validator(schema)
        value, problem = parse_json(sample.output, unwrap=self.unwrap)
        if problem is not None:
            return Score(0.0, label="invalid", explanation=problem)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            return Score(0.0, label="invalid", explanation=f"{where + ': ' if where else ''}{error.message}")
        return Score(1.0, label="valid", explanation="valid against the schema")


def register(registry: EvaluatorRegistry) -> None:
    registry.add("json_schema", JSONSchema)
