from __future__ import annotations

import pytest

from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import (
    MAX_RENDERED_CHARS,
    PromptRenderError,
    PromptTemplate,
    PromptTemplateError,
    is_plain,
)


def template(**spec: object) -> PromptTemplate:
    return PromptTemplate(PromptVersionSpec.model_validate(spec))


def test_chat_messages_render_with_defaults_and_types() -> None:
    t = template(
        messages=[
            {"role": "system", "content": "You help {{ company }} customers. Tone: {{ tone }}."},
            {"role": "user", "content": [{"type": "text", "text": "Order {{ order_id }}: {{ items | join(', ') }}"}]},
        ],
        variables={
            "company": "string",
            "tone": {"type": "string", "required": False, "default": "friendly"},
            "order_id": "integer",
            "items": "list",
        },
    )
    messages = t.render({"company": "Acme", "order_id": 42, "items": ["a", "b"]})
    assert messages == [
        {"role": "system", "content": "You help Acme customers. Tone: friendly."},
        {"role": "user", "content": [{"type": "text", "text": "Order 42: a, b"}]},
    ]


def test_missing_extra_and_mistyped_variables_are_named() -> None:
    t = template(text="{{ a }} {{ b }}", variables={"a": "string", "b": "integer"})
    with pytest.raises(PromptRenderError) as info:
        t.render({"b": "seven", "c": 1})
    err = info.value
    assert err.missing == ["a"] and err.extra == ["c"] and "b" in err.wrong
    assert "missing variable: a" in str(err) and "unknown variable: c" in str(err)
    assert "variable b: expected integer, got str" in str(err)


def test_boolean_is_not_an_integer() -> None:
    t = template(text="{{ n }}", variables={"n": "integer"})
    with pytest.raises(PromptRenderError):
        t.render({"n": True})


@pytest.mark.parametrize(
    "source",
    [
        "{{ name.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{% set x = [] %}{{ x.append(1) }}",
        "{{ name.format.__globals__ }}",
    ],
)
def test_sandbox_refuses_escape_attempts(source: str) -> None:
    variables = {"name": "string"} if "name" in source else {}
    if "cycler" in source:
        variables = {"cycler": "any"}
    t = template(text=source, variables=variables)
    with pytest.raises(PromptRenderError) as info:
        t.render({k: "x" for k in variables})
    assert "sandbox" in str(info.value) or "failed" in str(info.value)


def test_output_is_capped() -> None:
    t = template(text="{% for i in range(10000) %}{% for j in range(10) %}{{ 'x' * 100 }}{% endfor %}{% endfor %}")
    with pytest.raises(PromptRenderError, match=str(MAX_RENDERED_CHARS)):
        t.render({})


def test_undeclared_variables_are_refused_when_the_version_is_created() -> None:
    with pytest.raises(PromptTemplateError, match="add customer to `variables`"):
        template(text="Hello {{ customer }}")


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(PromptTemplateError, match="text: line 2"):
        template(text="ok\n{{ broken", variables={"broken": "string"})


def test_text_prompt_becomes_one_user_message() -> None:
    t = template(text="Hi {{ n }}", variables={"n": "string"})
    assert t.render_messages({"n": "Ada"}) == [{"role": "user", "content": "Hi Ada"}]


def test_a_version_is_text_or_messages() -> None:
    with pytest.raises(ValueError, match="either `messages`"):
        PromptVersionSpec.model_validate({"text": "a", "messages": [{"role": "user", "content": "b"}]})


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        ("Hello {{ name }}, about {{ order.id }} and {{ items[0] }}", True),
        ("no variables at all", True),
        ("{{ name|upper }}", False),
        ("{% if name %}{{ name }}{% endif %}", False),
        ("{{ name ~ name }}", False),
        ("{{ lipsum() }}", False),
    ],
)
def test_only_text_and_lookups_count_as_plain(source: str, plain: bool) -> None:
    assert is_plain(source) is plain
