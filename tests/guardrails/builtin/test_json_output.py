"""json_output: the answer parses as JSON and fits the schema; reasons never quote the answer's values."""

from __future__ import annotations

import pytest

from lmdeck.guardrails.base import GuardContext, GuardrailError
from lmdeck.guardrails.builtin import json_output
from lmdeck.guardrails.builtin.json_output import JsonOutput
from lmdeck.guardrails.registry import GuardrailRegistry

OUTPUT = GuardContext("output")
SCHEMA = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "integer"}}}


def test_registers_for_the_output_stage() -> None:
    registry = GuardrailRegistry()
    json_output.register(registry)
    guard = registry.create("json_output", {"schema": SCHEMA})
    assert guard.name == "json_output" and guard.stages == frozenset({"output"})


@pytest.mark.parametrize(
    "text", ['{"order_id": 5}', '```json\n{"order_id": 5, "note": "ok"}\n```', ' {"order_id": 7}\n']
)
async def test_valid_answers_pass(text: str) -> None:
    assert (await JsonOutput(schema=SCHEMA).check(text, OUTPUT)).passed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Sure! Here it is: {", "answer: not JSON: Expecting value at line 1 column 1"),
        ('{"order_id": "ana@example.org"}', "answer: fails the schema at /order_id: type 'integer'"),
        ('{"note": "x"}', "answer: fails the schema at /: required ['order_id']"),
        ("[1, 2]", "answer: fails the schema at /: type 'object'"),
    ],
)
async def test_invalid_answers_are_blocked_with_a_reason_from_the_schema_side(text: str, reason: str) -> None:
    verdict = await JsonOutput(schema=SCHEMA).check(text, OUTPUT)
    assert verdict.blocked and verdict.reason == reason
    assert "ana@example.org" not in verdict.reason


async def test_without_a_schema_any_json_passes_unless_object_only() -> None:
    assert (await JsonOutput().check("[1, 2]", OUTPUT)).passed
    verdict = await JsonOutput(object_only=True).check("[1, 2]", OUTPUT)
    assert verdict.blocked and verdict.reason == "answer: JSON list, not an object"
    assert (await JsonOutput(unwrap=False).check('```json\n{"a": 1}\n```', OUTPUT)).blocked


async def test_a_stream_still_arriving_passes_and_the_whole_answer_is_judged() -> None:
    guard = JsonOutput(schema=SCHEMA)
    assert (await guard.check('{"order_', GuardContext("output", final=False))).passed
    assert (await guard.check('{"order_', GuardContext("output", final=True))).blocked


async def test_a_long_answer_is_checked_too() -> None:
    text = '{"order_id": 1, "items": [' + ", ".join(['"item"'] * 5000) + "]}"
    assert (await JsonOutput(schema=SCHEMA).check(text, OUTPUT)).passed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schema": ["not", "a", "schema"]}, "schema must be a JSON schema object"),
        ({"schema": {"type": "no-such-type"}}, "the schema is not valid"),
        ({"object_only": "yes"}, "object_only must be true or false"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(GuardrailError, match=message):
        JsonOutput(**options)  # type: ignore[arg-type]
