"""Bounded rendering: the sandbox's limits, and the worker processes that stop a render past its time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import PromptLimitError, PromptRenderError, PromptTemplate
from lmdeck.registry.rendering import TemplateRenderer

BURN = "{% set s = 'x' * 3000 %}{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}"


def template(text: str, **variables: str) -> PromptTemplate:
    return PromptTemplate(PromptVersionSpec(text=text, variables=variables))


@pytest.fixture
async def renderer() -> AsyncIterator[TemplateRenderer]:
    bounded = TemplateRenderer(workers=1, cpu_seconds=0.5, memory_mb=128)
    yield bounded
    await bounded.aclose()


@pytest.mark.parametrize(
    ("source", "limit"),
    [
        ("{{ lipsum(200000) }}", "lipsum"),
        ("{{ lipsum(3, max=100000) }}", "lipsum"),
        ("{% for i in range(20000) %}{% endfor %}", "range"),
        ("{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}", "loop_items"),
        ("{{ 'a' * 200000000 }}", "output_chars"),
        ("{{ ('ab' * 600000)|length }}", "output_chars"),
        ("{{ [1] * 2000000 }}", "output_chars"),
        ("{% set a = 'x' * 900000 %}{{ (a + a)|length }}", "output_chars"),
        ("{{ '%0999999999d' % 1 }}", "output_chars"),
        ("{{ '%*d'|format(999999999, 1) }}", "output_chars"),
        ("{{ 'x'|center(999999999) }}", "output_chars"),
        ("{{ 'x'.rjust(999999999) }}", "output_chars"),
        ("{% set n = 7 %}{{ n ** 100000 }}", "int_bits"),
        ("{% set ns = namespace(x=3) %}{% for i in range(30) %}{% set ns.x = ns.x * ns.x %}{% endfor %}", "int_bits"),
        ("{% macro again(n) %}{{ again(n + 1) }}{% endmacro %}{{ again(1) }}", "call_depth"),
        ("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}{{ 'y' }}", "output_chars"),
    ],
)
async def test_each_limit_is_named(renderer: TemplateRenderer, source: str, limit: str) -> None:
    for render in (lambda t: renderer.render(t, {}, key=source), None):
        compiled = template(source)
        with pytest.raises(PromptLimitError) as refused:
            if render is None:
                compiled.render({})  # in this process (the SDK's path) the same limits hold
            else:
                await render(compiled)
        assert refused.value.limit == limit and f"{limit}:" in str(refused.value)


async def test_a_template_that_only_burns_cpu_is_stopped_and_the_worker_lives_on(renderer: TemplateRenderer) -> None:
    with pytest.raises(PromptLimitError) as stopped:
        await renderer.render(template(BURN), {}, key="burn")
    assert stopped.value.limit == "cpu_seconds" and "0.5 s of CPU time" in str(stopped.value)
    logic = template("{% if name %}Hi {{ name|title }}{% endif %}", name="string")
    assert await renderer.render(logic, {"name": "ada"}, key="logic") == "Hi Ada"


async def test_a_worker_that_does_not_answer_in_time_is_killed_and_replaced() -> None:
    # A CPU allowance longer than the wall-clock one stands for work the CPU timer cannot interrupt.
    renderer = TemplateRenderer(workers=1, cpu_seconds=60, wall_seconds=1.0)
    try:
        with pytest.raises(PromptLimitError) as killed:
            await renderer.render(template(BURN), {}, key="burn")
        assert killed.value.limit == "wall_seconds"
        assert await renderer.render(template("{{ n|int + 1 }}", n="string"), {"n": "41"}, key="n") == "42"
    finally:
        await renderer.aclose()


async def test_memory_past_the_workers_cap_is_a_limit(renderer: TemplateRenderer) -> None:
    doubling = (
        "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(12) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        "{{ ns.s|length }}"
    )
    with pytest.raises(PromptLimitError) as refused:
        await renderer.render(template(doubling), {}, key="doubling")
    assert refused.value.limit == "memory"


async def test_renders_agree_with_the_in_process_render_and_keep_messages(renderer: TemplateRenderer) -> None:
    spec = PromptVersionSpec(
        messages=[
            {"role": "system", "content": "You help {{ company|upper }}."},
            {"role": "user", "content": [{"type": "text", "text": "{{ question }}"}, {"type": "image_url", "x": 1}]},
        ],
        variables={"company": "string", "question": "string"},
    )
    compiled = PromptTemplate(spec)
    given = {"company": "acme", "question": "Where?"}
    assert not compiled.inline
    assert await renderer.render(compiled, given, key="msgs") == compiled.render(given)
    with pytest.raises(PromptRenderError, match="missing variable: question"):
        await renderer.render(compiled, {"company": "acme"}, key="msgs")
    failing = template("{{ name.nope.deeper }}", name="string")
    with pytest.raises(PromptRenderError, match="the template failed") as failed:
        await renderer.render(failing, {"name": "x"}, key="failing")
    assert not isinstance(failed.value, PromptLimitError)
