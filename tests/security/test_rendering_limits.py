"""Expensive prompt templates against a real ``lmdeck serve``: each is refused with a 400 naming the
limit it broke, and ``/health/live`` keeps answering while the render runs (it is off the event loop).

Responsiveness is judged by order, not by the clock: a template that can only be stopped by its
CPU-time limit is rendered while ``/health/live`` is polled, and the health answers must arrive
while that render is still pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.testing.servers import TEST_SETTINGS, GatewayProcess, gateway_process

pytestmark = pytest.mark.integration

#: Template -> the limit its render must be refused by.
ATTACKS: dict[str, tuple[str, str]] = {
    "lipsum": ("{{ lipsum(200000) }}", "lipsum"),
    "nested-loops": ("{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}", "loop_items"),
    "big-range": ("{% for i in range(100000000) %}{% endfor %}", "range"),
    "repeat": ("{{ 'a' * 200000000 }}", "output_chars"),
    "repeat-length": ("{{ ('a' * 200000000)|length }}", "output_chars"),
    "power": ("{% set n = 2 %}{{ n ** 100000000 }}", "int_bits"),
    "width": ("{{ 'a'.ljust(1000000000) }}", "output_chars"),
    "recursion": ("{% macro again(n) %}{{ again(n) }}{% endmacro %}{{ again(1) }}", "call_depth"),
    "doubling": (
        "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(16) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        "memory",
    ),
    "cpu": (
        "{% set s = 'x' * 5000 %}{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}",
        "cpu_seconds",
    ),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = {**TEST_SETTINGS, "registry": {"render_cpu_seconds": 3.0, "render_workers": 2}}
    with gateway_process(config, data_dir=tmp_path_factory.mktemp("render")) as gw:
        for name, (text, _) in {**ATTACKS, "hello": ("Hello {% if name %}{{ name }}{% endif %}", "")}.items():
            variables = {"name": "string"} if name == "hello" else {}
            created = httpx.post(
                f"{gw.url}/api/registry/prompts/{name}/versions",
                json={"text": text, "variables": variables},
                headers=gw.headers(),
                timeout=30,
            )
            assert created.status_code == 201, created.text
        yield gw


async def render(
    http: httpx.AsyncClient, gw: GatewayProcess, prompt: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    return await http.post(
        f"{gw.url}/api/registry/prompts/{prompt}/render",
        json={"version": 1, "variables": variables or {}},
        headers=gw.headers(),
        timeout=120,
    )


async def render_while_polling_health(gw: GatewayProcess, name: str) -> tuple[httpx.Response, list[int]]:
    """Render ``name``; meanwhile poll /health/live. Returns the render's answer and the health
    statuses that arrived before it."""
    async with httpx.AsyncClient(timeout=120) as http:
        rendering = asyncio.create_task(render(http, gw, name))
        answered_first: list[int] = []
        while not rendering.done():
            live = await http.get(f"{gw.url}/health/live", timeout=120)
            if not rendering.done():
                answered_first.append(live.status_code)
            await asyncio.sleep(0.05)
        return await rendering, answered_first


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_each_attack_is_a_400_naming_its_limit(gateway: GatewayProcess, name: str) -> None:
    answer, health = asyncio.run(render_while_polling_health(gateway, name))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "render_limit_exceeded" and error["type"] == "invalid_request_error"
    assert error["param"] == "variables"
    limit = ATTACKS[name][1]
    assert f"{limit}:" in error["message"], error["message"]
    assert all(status == 200 for status in health)
    # The gateway renders on: a plain render and one with logic both still work.
    hello = asyncio.run(render_once(gateway, "hello", {"name": "Ada"}))
    assert hello.status_code == 200 and hello.json()["text"] == "Hello Ada"


async def render_once(gw: GatewayProcess, prompt: str, variables: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await render(http, gw, prompt, variables)


def test_health_answers_while_a_render_burns_its_cpu_time(gateway: GatewayProcess) -> None:
    answer, health = asyncio.run(render_while_polling_health(gateway, "cpu"))
    assert answer.status_code == 400 and "cpu_seconds:" in answer.json()["error"]["message"]
    # The render took its whole CPU allowance; /health/live answered meanwhile, not after it.
    assert health and all(status == 200 for status in health), health


def test_a_chat_prompt_is_bounded_too(gateway: GatewayProcess, tmp_path: Path) -> None:
    for name in ("lipsum", "recursion", "repeat-length"):
        answer = httpx.post(
            f"{gateway.base_url}/chat/completions",
            json={"model": "anything", "messages": [], "prompt": {"name": name, "version": 1}},
            headers=gateway.headers(),
            timeout=120,
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "render_limit_exceeded" and error["param"] == "prompt.variables"
        assert f"{ATTACKS[name][1]}:" in error["message"] and f"prompt {name!r} v1" in error["message"]
    assert httpx.get(f"{gateway.url}/health/live", timeout=30).status_code == 200
