"""The routing blocks of a route (cascade, learned, compression): what `lmdeck config check` refuses."""

from __future__ import annotations

import pytest

from lmdeck.config import check_config_text

TWO = "targets: [local:demo, openai:gpt-4o]"


def problems(route: str) -> list[str]:
    return [p.message for p in check_config_text(f"routes:\n  - {route}\n")]


def test_a_cascade_route_with_checks_is_valid() -> None:
    text = (
        f"{{name: smart, strategy: cascade, {TWO}, cascade: {{checks: [{{kind: logprob, min_logprob: -0.3}}, "
        "{kind: evaluator, evaluator: {name: json_valid}}], stream: refuse}, "
        "compression: {max_prompt_tokens: 500, keep_last_turns: 2}}"
    )
    assert problems(text) == []


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("{name: s, strategy: cascade, targets: [local:demo]}", "needs at least two targets"),
        ("{name: s, strategy: learned, targets: [local:demo]}", "needs at least two targets"),
        (f"{{name: s, {TWO}, cascade: {{}}}}", "set `strategy: cascade` or remove it"),
        (f"{{name: s, {TWO}, learned: {{}}}}", "set `strategy: learned` or remove it"),
        (f"{{name: s, strategy: cascade, {TWO}, cascade: {{checks: [{{kind: evaluator}}]}}}}", "needs `evaluator:"),
        (f"{{name: s, strategy: cascade, {TWO}, cascade: {{checks: [{{min_logprob: 0.5}}]}}}}", "less than or equal"),
        (f"{{name: s, strategy: cascade, {TWO}, cascade: {{checks: []}}}}", "at least 1 item"),
        (f"{{name: s, strategy: cascade, {TWO}, cascade: {{stream: maybe}}}}", "'buffer' or 'refuse'"),
        (f"{{name: s, strategy: learned, {TWO}, learned: {{threshold: 1.5}}}}", "less than 1"),
        (f"{{name: s, {TWO}, compression: {{keep_last_turns: 0}}}}", "greater than or equal to 1"),
    ],
)
def test_config_check_refuses_a_bad_routing_block(route: str, message: str) -> None:
    found = problems(route)
    assert found and any(message in p for p in found), found
