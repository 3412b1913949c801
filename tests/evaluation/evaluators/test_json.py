"""The JSON evaluators."""

from __future__ import annotations

import pytest

from lmdeck.evaluation import EvaluatorContext, EvaluatorError, EvaluatorSpec, Sample
from lmdeck.evaluation.evaluators.json_schema import JSONSchema
from lmdeck.evaluation.evaluators.json_valid import JSONValid

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


@pytest.mark.parametrize(
    ("output", "want"),
    [('{"a": 1}', 1.0), ("[1, 2]", 1.0), ('```json\n{"a": 1}\n```', 1.0), ("{a: 1}", 0.0), ("", 0.0)],
)
async def test_json_valid(output: str, want: float) -> None:
    assert (await JSONValid(EvaluatorContext()).evaluate(Sample(output))).value == want


async def test_json_valid_object_only() -> None:
    result = await JSONValid(EvaluatorContext(), object_only=True).evaluate(Sample("[1]"))
    assert result.value == 0.0 and "not an object" in result.explanation


async def test_json_valid_can_refuse_fences() -> None:
    result = await JSONValid(EvaluatorContext(), unwrap=False).evaluate(Sample("```json\n{}\n```"))
    assert result.value == 0.0 and "line 1" in result.explanation


@pytest.mark.parametrize(
    ("output", "want", "fragment"),
    [
        ('{"name": "Ada", "age": 36}', 1.0, "valid"),
        ('{"name": "Ada"}', 0.0, "'age' is a required property"),
        ('{"name": "Ada", "age": -1}', 0.0, "age: -1 is less than the minimum"),
        ("not json", 0.0, "not JSON"),
    ],
)
async def test_json_schema(output: str, want: float, fragment: str) -> None:
    result = await JSONSchema(EvaluatorContext(), schema=SCHEMA).evaluate(Sample(output))
    assert result.value == want
    assert fragment in result.explanation


async def test_json_schema_from_row_metadata() -> None:
    evaluator = JSONSchema(EvaluatorContext())
    assert evaluator.requires_reference
    result = await evaluator.evaluate(Sample('{"name": "x", "age": 1}', metadata={"schema": SCHEMA}))
    assert result.value == 1.0
    missing = await evaluator.evaluate(Sample("{}"))
    assert missing.label == "no_reference"


def test_invalid_schema_is_refused_at_build_time() -> None:
    with pytest.raises(EvaluatorError, match="schema is not valid"):
        JSONSchema(EvaluatorContext(), schema={"type": "nonsense"})


def test_schema_given_as_json_option() -> None:
    spec = EvaluatorSpec.parse('json_schema:{"schema": {"type": "array"}}')
    assert spec.options == {"schema": {"type": "array"}}
