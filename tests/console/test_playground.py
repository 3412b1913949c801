"""The playground form: one input per declared variable, values read back by their declared type, the
run's fields checked, and the chat request a run sends."""

from __future__ import annotations

import pytest

from lmdeck.console.playground import read_playground_form, read_variables, variable_fields
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import PromptVersionSpec

SPEC = PromptVersionSpec.model_validate(
    {
        "text": "{{ who }} {{ n }} {{ x }} {{ loud }} {{ tags }} {{ extra }}",
        "variables": {
            "who": {"type": "string", "description": "who to greet"},
            "n": "integer",
            "x": {"type": "number", "default": 0.5},
            "loud": {"type": "boolean", "required": False},
            "tags": "list",
            "extra": "any",
        },
    }
)


def test_one_field_per_declared_variable_with_its_input_kind() -> None:
    fields = {f.name: f for f in variable_fields(SPEC)}
    assert {n: f.input for n, f in fields.items()} == {
        "extra": "json",
        "loud": "boolean",
        "n": "integer",
        "tags": "json",
        "who": "text",
        "x": "number",
    }
    assert fields["who"].required and fields["who"].description == "who to greet"
    assert not fields["x"].required and fields["x"].hint == "0.5"
    assert not fields["loud"].required


def test_values_are_read_by_their_declared_type_and_blanks_are_left_out() -> None:
    form = {"var.who": " Ada ", "var.n": "3", "var.x": "", "var.loud": "false", "var.tags": '["a", 1]', "var.extra": ""}
    assert read_variables(form, SPEC) == {"who": " Ada ", "n": 3, "loud": False, "tags": ["a", 1]}
    assert read_variables({"var.x": "2"}, SPEC) == {"x": 2}
    assert read_variables({"var.x": "2.5", "var.extra": '{"k": null}'}, SPEC) == {"x": 2.5, "extra": {"k": None}}
    assert read_variables({"var.who": "", "var.unknown": "1"}, SPEC) == {}


@pytest.mark.parametrize(
    ("form", "names"),
    [
        ({"var.n": "three"}, "variable n"),
        ({"var.n": "1.5"}, "variable n"),
        ({"var.x": "nan"}, "variable x"),
        ({"var.loud": "yes"}, "variable loud"),
        ({"var.tags": "[1,"}, "variable tags"),
        ({"var.who": "x" * 100_001}, "var.who"),
    ],
)
def test_a_value_of_the_wrong_kind_is_a_400_naming_it(form: dict[str, str], names: str) -> None:
    with pytest.raises(APIError) as caught:
        read_variables(form, SPEC)
    assert caught.value.status == 400 and names in caught.value.message


def test_the_run_fields_are_checked_and_make_the_chat_request() -> None:
    choice = read_playground_form({"var.who": "Ada", "route": " demo ", "max_tokens": "16", "temperature": "0.2"}, SPEC)
    assert choice.chat_body("greet", 3) == {
        "model": "demo",
        "messages": [],
        "prompt": {"name": "greet", "version": 3, "variables": {"who": "Ada"}},
        "max_tokens": 16,
        "temperature": 0.2,
    }
    bare = read_playground_form({"route": "demo", "max_tokens": " ", "temperature": ""}, SPEC)
    assert bare.chat_body("greet", 1) == {
        "model": "demo",
        "messages": [],
        "prompt": {"name": "greet", "version": 1, "variables": {}},
    }
    for bad, field in [
        ({"route": ""}, "route"),
        ({"route": "demo", "max_tokens": "many"}, "max_tokens"),
        ({"route": "demo", "max_tokens": "2.5"}, "max_tokens"),
        ({"route": "demo", "max_tokens": "0"}, "max_tokens"),
        ({"route": "demo", "max_tokens": "1e9"}, "max_tokens"),
        ({"route": "demo", "temperature": "inf"}, "temperature"),
        ({"route": "demo", "temperature": "-0.1"}, "temperature"),
    ]:
        with pytest.raises(APIError) as caught:
            read_playground_form(bad, SPEC)
        assert (caught.value.status, caught.value.param) == (400, field), bad
